using System.Runtime.InteropServices;

namespace Sessionization.Domain;

/// <summary>
/// A position in the visits table's log: the first data file not yet consumed is file
/// <see cref="FileIndex"/> (in commit order) of commit <see cref="Version"/>.
/// </summary>
public readonly record struct SourceCursor(long Version, int FileIndex) : IComparable<SourceCursor>
{
    public static SourceCursor Start { get; } = new(0, 0);

    public int CompareTo(SourceCursor other) =>
        Version != other.Version ? Version.CompareTo(other.Version) : FileIndex.CompareTo(other.FileIndex);

    public override string ToString() => $"v{Version}#{FileIndex}";
}

/// <summary>A data file added to the visits table, at its place in the log.</summary>
public sealed record SourceFile(long Version, int Index, string Path, long Size)
{
    public SourceCursor Position => new(Version, Index);

    public SourceCursor Next => new(Version, Index + 1);
}

/// <summary>
/// One batch: which files it reads, and where the source cursor stands before and after it. A batch at the end of
/// input (<paramref name="EndOfInput"/>) closes every session still open; <paramref name="WatermarkAtLeast"/> is a
/// watermark decided when it was planned (a worker's idle close, from the wall clock), kept here so a replay gives
/// the same output.
/// </summary>
public sealed record BatchPlan(long Batch, SourceCursor From, SourceCursor To, IReadOnlyList<SourceFile> Files, bool EndOfInput = false, long? WatermarkAtLeast = null)
{
    /// <summary>The highest visits-table version this batch reads from.</summary>
    public long LastVersion => Files.Count == 0 ? To.Version : Files[^1].Version;

    public bool Equals(BatchPlan? other) =>
        other is not null && Batch == other.Batch && From == other.From && To == other.To && Files.SequenceEqual(other.Files)
        && EndOfInput == other.EndOfInput && WatermarkAtLeast == other.WatermarkAtLeast;

    public override int GetHashCode() => HashCode.Combine(Batch, From, To);
}

public static class BatchPlanner
{
    /// <summary>
    /// Plans the next batch from the files committed after <paramref name="cursor"/> (given in log order), at most
    /// <paramref name="maxFiles"/> of them and none from a version after <paramref name="upToVersion"/>: a run
    /// takes what was available when it started. Returns null when there is nothing new: an empty run forms no batch.
    /// </summary>
    public static BatchPlan? PlanNext(long batch, SourceCursor cursor, IEnumerable<SourceFile> available, int maxFiles, long upToVersion = long.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFiles, 1);
        var files = available.Where(f => f.Position.CompareTo(cursor) >= 0).TakeWhile(f => f.Version <= upToVersion).Take(maxFiles).ToList();
        return files.Count == 0 ? null : new BatchPlan(batch, cursor, files[^1].Next, files);
    }
}

/// <summary>Splits a batch's visits by user, each user's visits in visit-time order (ties keep read order).</summary>
public static class BatchGrouping
{
    public static Dictionary<long, List<PageVisit>> ByUser(IEnumerable<Visit> visitsInReadOrder)
    {
        var byUser = new Dictionary<long, List<PageVisit>>();
        foreach (var visit in visitsInReadOrder)
        {
            if (!byUser.TryGetValue(visit.UserId, out var list))
                byUser[visit.UserId] = list = new List<PageVisit>(2);
            list.Add(new PageVisit(visit.VisitTimeMicros, visit.Page));
        }

        foreach (var list in byUser.Values)
            SortStable(CollectionsMarshal.AsSpan(list));
        return byUser;
    }

    /// <summary>The users a batch touches: those with visits, and those with an open session that this batch closes.</summary>
    public static IReadOnlyList<long> UsersToClose(IEnumerable<long> openUsers, IReadOnlyDictionary<long, List<PageVisit>> active) =>
        openUsers.Where(u => !active.ContainsKey(u)).Order().ToList();

    /// <summary>
    /// Puts visits in time order, equal times kept in the order they came: a batch's visits and a session's arriving
    /// ones are mostly in order already, so a short run is sorted in place by insertion and a long one, where
    /// insertion could cost the square of its length, by LINQ's stable sort.
    /// </summary>
    internal static void SortStable(Span<PageVisit> visits)
    {
        if (IsInTimeOrder(visits))
            return;
        if (visits.Length > 64)
        {
            visits.ToArray().OrderBy(v => v.TimeMicros).ToArray().CopyTo(visits);
            return;
        }

        for (var i = 1; i < visits.Length; i++)
        {
            var item = visits[i];
            var j = i - 1;
            while (j >= 0 && visits[j].TimeMicros > item.TimeMicros)
            {
                visits[j + 1] = visits[j];
                j--;
            }

            visits[j + 1] = item;
        }
    }

    private static bool IsInTimeOrder(ReadOnlySpan<PageVisit> visits)
    {
        for (var i = 1; i < visits.Length; i++)
        {
            if (visits[i].TimeMicros < visits[i - 1].TimeMicros)
                return false;
        }

        return true;
    }
}

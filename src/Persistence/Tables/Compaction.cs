using System.Globalization;
using Sessionization.Domain;

namespace Sessionization.Persistence.Tables;

/// <summary>
/// Table upkeep for a worker's many small per-batch files: the session tables' files are compacted (Delta's
/// <c>OPTIMIZE</c>) into files of about a target size. The batches a rewind can still take back are left as they are,
/// so a rewind never has to split a compacted file and never needs a file a vacuum deleted.
/// </summary>
public static class Compaction
{
    /// <summary>Delta's own default target is 1 GiB; session rows are small, and a reader holds a row group at a time.</summary>
    public const long DefaultTargetBytes = 128L << 20;

    /// <summary>
    /// The first batch a compaction must leave alone: the oldest batch whose starting checkpoint is retained (a rewind
    /// can go back to it), and never later than the last committed batch. Null when no batch is committed, or while
    /// a rewind is unfinished (the tables are between two states).
    /// </summary>
    public static long? CompactBefore(CoordinatorState state) =>
        state.RewindingTo is null && state.LastCommitted is { } last ? Math.Min(state.Checkpoints[0].Batch, last.Batch) : null;

    /// <summary>Compacts <c>pending_sessions</c> and <c>sessions</c> under <paramref name="baseDirectory"/>, each in one commit.</summary>
    public static Task<IReadOnlyList<CompactionResult>> OptimizeAsync(string baseDirectory, long compactBefore, long targetBytes, CancellationToken cancellationToken = default) =>
        OptimizeAsync([SessionTable.Pending(baseDirectory), SessionTable.Completed(baseDirectory)], compactBefore, targetBytes, cancellationToken);

    /// <summary>Compacts each of <paramref name="tables"/> in one commit of its own.</summary>
    public static async Task<IReadOnlyList<CompactionResult>> OptimizeAsync(IReadOnlyList<SessionTable> tables, long compactBefore, long targetBytes, CancellationToken cancellationToken = default)
    {
        var results = new List<CompactionResult>();
        foreach (var table in tables)
            results.Add(await table.OptimizeAsync(compactBefore, targetBytes, cancellationToken: cancellationToken));
        return results;
    }

    /// <summary>What <see cref="TryParseSize"/> takes, in an error's words.</summary>
    public const string SizeExamples = "a size like 128MiB, 512KiB or 1GiB";

    /// <summary>A size like <c>128MiB</c>, <c>512KiB</c>, <c>1GiB</c> or <c>4096B</c>; null when it is not one.</summary>
    public static long? TryParseSize(string text)
    {
        var t = text.Trim();
        (string Suffix, long Bytes)[] units = [("GiB", 1L << 30), ("MiB", 1L << 20), ("KiB", 1L << 10), ("B", 1)];
        foreach (var (suffix, bytes) in units)
        {
            if (t.EndsWith(suffix, StringComparison.Ordinal)
                && long.TryParse(t[..^suffix.Length], NumberStyles.None, CultureInfo.InvariantCulture, out var n)
                && n > 0 && n <= long.MaxValue / bytes)
                return n * bytes;
        }

        return null;
    }

    /// <summary>A size in the units a user reads: bytes, KiB, MiB or GiB.</summary>
    public static string FormatSize(long bytes) => bytes switch
    {
        < 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes} B"),
        < 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KiB"),
        < 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024):F1} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / (1024.0 * 1024 * 1024):F1} GiB"),
    };

    /// <summary>A compaction of several tables in one line, a table after another.</summary>
    public static string Describe(IEnumerable<CompactionResult> results) => string.Join("; ", results.Select(Describe));

    /// <summary>One table's compaction in words: what was joined into what, as which version, or that nothing was.</summary>
    public static string Describe(CompactionResult result)
    {
        if (result.Version is not { } version)
            return $"{result.Table}: nothing to compact";
        var files = result.Joined.Sum(j => j.Files.Count);
        var bytes = result.Joined.Sum(j => j.Size);
        return string.Create(
            CultureInfo.InvariantCulture,
            $"{result.Table}: joined {files} files ({FormatSize(bytes)}) into {result.Joined.Count} ({FormatSize(result.Bytes)}; {string.Join(", ", result.Joined.Select(j => $"batches {j.First}..{j.Last}"))}) as version {version}");
    }
}

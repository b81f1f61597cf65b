using System.Text.Json.Nodes;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;

namespace Sessionization.Persistence.Tables;

/// <summary>How far the committed batches are behind the visits table.</summary>
/// <param name="Versions">Versions with a data file not yet in a committed batch.</param>
/// <param name="Visits">Visits in those files, as their Delta statistics count them (a file without statistics counts none).</param>
/// <param name="OldestCommit">When the oldest of those versions was committed; null when nothing is behind.</param>
public sealed record Backlog(long Versions, long Visits, DateTimeOffset? OldestCommit);

/// <summary>
/// Measures the backlog from a cursor. Commits are immutable, so each is read once and remembered until the cursor
/// passes it: a worker measuring at every poll reads only the commits that arrived since the last one.
/// </summary>
public sealed class VisitsBacklog(VisitsTable visits)
{
    private readonly Dictionary<long, Commit> _commits = [];
    private readonly Lock _lock = new();

    /// <param name="Records">Each data file's row count, in the commit's order.</param>
    /// <param name="Committed">The commit file's modification time: a Delta commit's timestamp.</param>
    private sealed record Commit(long[] Records, DateTimeOffset Committed);

    public Backlog Measure(SourceCursor from, long latest)
    {
        lock (_lock)
        {
            foreach (var passed in _commits.Keys.Where(v => v < from.Version).ToList())
                _commits.Remove(passed);
            long versions = 0, records = 0;
            DateTimeOffset? oldest = null;
            for (var version = from.Version; version <= latest; version++)
            {
                var commit = Read(version);
                var skip = version == from.Version ? from.FileIndex : 0;
                if (commit.Records.Length <= skip)
                    continue;
                versions++;
                records += commit.Records.Skip(skip).Sum();
                oldest ??= commit.Committed;
            }

            return new Backlog(versions, records, oldest);
        }
    }

    private Commit Read(long version)
    {
        if (_commits.TryGetValue(version, out var known))
            return known;
        var committed = new DateTimeOffset(File.GetLastWriteTimeUtc(visits.Delta.CommitPath(version)), TimeSpan.Zero);
        var records = visits.Delta.ReadCommit(version).OfType<AddFile>().Where(a => a.DataChange).Select(a => RecordCount(a.Stats)).ToArray();
        return _commits[version] = new Commit(records, committed);
    }

    private static long RecordCount(string? stats)
    {
        if (string.IsNullOrEmpty(stats))
            return 0;
        try
        {
            return JsonNode.Parse(stats)?["numRecords"]?.GetValue<long>() ?? 0;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            return 0;
        }
    }
}

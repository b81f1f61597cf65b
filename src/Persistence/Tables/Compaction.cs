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
    public static async Task<IReadOnlyList<CompactionResult>> OptimizeAsync(string baseDirectory, long compactBefore, long targetBytes, CancellationToken cancellationToken = default)
    {
        var results = new List<CompactionResult>();
        foreach (var table in new[] { SessionTable.Pending(baseDirectory), SessionTable.Completed(baseDirectory) })
            results.Add(await table.OptimizeAsync(compactBefore, targetBytes, cancellationToken: cancellationToken));
        return results;
    }
}

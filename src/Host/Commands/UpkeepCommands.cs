using System.Globalization;
using Sessionization.Host.Configuration;
using Sessionization.Host.Runtime;
using Sessionization.Persistence.Tables;

namespace Sessionization.Host.Commands;

/// <summary>Table upkeep: compacting the session tables' small files, and deleting files no retained version needs.</summary>
public static class UpkeepCommands
{
    /// <summary>
    /// Compacts the session tables' small files. It holds the coordinator lock, so no batch writes while it does, and
    /// asks the coordinator's state which batches a rewind can still take back: those are left alone.
    /// </summary>
    public static async Task<int> OptimizeAsync(CommandContext context, long targetBytes, CancellationToken cancellationToken)
    {
        context.RequireBaseDirectory();
        using var coordinatorLock = CoordinatorLock.Acquire(SessionizationConfig.StateDirectory(context.BaseDirectory), "optimize");
        var pipeline = Pipelines.Resolve(context.BaseDirectory, create: false);
        if (pipeline is null || !SessionTable.Completed(context.BaseDirectory).Delta.Exists)
            throw new UserFacingException($"no output tables in {context.BaseDirectory} (run has not committed a batch yet)");
        Domain.CoordinatorState state;
        await using (var runtime = await SessionizerRuntime.StartAsync(context.Config, context.Settings, pipeline, cancellationToken))
            state = await runtime.GetStateAsync(cancellationToken);
        if (state.RewindingTo is { } rewinding)
            throw new UserFacingException($"a rewind to batch {rewinding} has not finished; `run` finishes it, then optimize");
        if (Compaction.CompactBefore(state) is not { } before || before == 0)
        {
            context.Output.WriteLine(state.LastCommitted is null
                ? "optimize: nothing to compact: no batch is committed"
                : $"optimize: nothing to compact: every batch (0..{state.LastCommitted.Batch}) can still be rewound to; lower sessionization.checkpoints.retain to compact older ones");
            return 0;
        }

        context.Output.WriteLine($"optimize: compacting files of batches 0..{before - 1} into files of up to {Compaction.FormatSize(targetBytes)}; batches {before}.. can still be rewound to and stay as they are");
        foreach (var result in await Compaction.OptimizeAsync(context.BaseDirectory, before, targetBytes, cancellationToken))
            context.Output.WriteLine(Compaction.Describe(result));

        return 0;
    }

    /// <summary>
    /// Deletes the output tables' data files that no version inside <paramref name="retain"/> needs. It holds the
    /// coordinator lock while it works, so it never races a batch writing its files.
    /// </summary>
    public static Task<int> VacuumAsync(CommandContext context, TimeSpan retain, bool dryRun)
    {
        context.RequireBaseDirectory();
        using var coordinatorLock = CoordinatorLock.Acquire(SessionizationConfig.StateDirectory(context.BaseDirectory), "vacuum");
        var tables = new[]
        {
            SessionTable.Pending(context.BaseDirectory).Delta,
            SessionTable.Completed(context.BaseDirectory).Delta,
            QuarantineTable.In(context.BaseDirectory).Delta,
        }.Where(t => t.Exists).ToList();
        if (tables.Count == 0)
            throw new UserFacingException($"no output tables in {context.BaseDirectory} (run has not committed a batch yet)");
        var now = DateTimeOffset.UtcNow;
        foreach (var table in tables)
        {
            var result = Persistence.Delta.DeltaVacuum.Run(table, now, retain, dryRun);
            context.Output.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"{result.Table}: {(dryRun ? "would delete" : "deleted")} {result.Deleted.Count} file{(result.Deleted.Count == 1 ? "" : "s")} ({result.Bytes / 1024.0:F1} KiB); kept {result.Kept} removed file{(result.Kept == 1 ? "" : "s")} still inside the retention"));
            if (dryRun)
            {
                foreach (var file in result.Deleted)
                    context.Output.WriteLine($"  {file}");
            }
        }

        return Task.FromResult(0);
    }
}

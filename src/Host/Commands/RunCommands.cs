using System.Globalization;
using Sessionization.Actors;
using Sessionization.Domain;
using Sessionization.Host.Configuration;
using Sessionization.Host.Runtime;
using Sessionization.Persistence.Tables;

namespace Sessionization.Host.Commands;

/// <summary>The coordinator's commands: drain-and-exit, long-running worker, and status.</summary>
public static class RunCommands
{
    public static async Task<int> RunAsync(CommandContext context, CancellationToken cancellationToken, long? fromBatch = null, bool endOfInput = false)
    {
        Directory.CreateDirectory(context.BaseDirectory);
        using var coordinatorLock = CoordinatorLock.Acquire(SessionizationConfig.StateDirectory(context.BaseDirectory), "run");
        await using var runtime = await SessionizerRuntime.StartAsync(context.Config, context.Settings, cancellationToken);
        var batches = await runtime.RunUntilDrainedAsync(
            context.Settings.MaxFilesPerBatch, fromBatch, context.Settings.BadRows, endOfInput, r => context.Output.WriteLine(Describe(r)), cancellationToken);
        context.Output.WriteLine(batches == 0
            ? endOfInput
                ? "run: no new visits and no pending sessions; no batch formed"
                : "run: no new visits since the last checkpoint; no batch formed"
            : $"run: {batches} batch{(batches == 1 ? "" : "es")} committed");
        return 0;
    }

    public static async Task<int> WorkerAsync(CommandContext context, CancellationToken stop)
    {
        Directory.CreateDirectory(context.BaseDirectory);
        using var coordinatorLock = CoordinatorLock.Acquire(SessionizationConfig.StateDirectory(context.BaseDirectory), "worker");
        // A service's warnings belong on its standard error, where its supervisor collects them.
        var config = Akka.Configuration.ConfigurationFactory.ParseString("sessionization.log-to-console = on").WithFallback(context.Config);
        await using var runtime = await SessionizerRuntime.StartAsync(config, context.Settings, stop);
        context.Output.WriteLine($"worker: polling {VisitsTable.In(context.BaseDirectory).Delta.Root} every {context.Settings.PollInterval.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s; Ctrl+C or SIGTERM stops");
        await runtime.PollUntilStoppedAsync(
            context.Settings.MaxFilesPerBatch,
            context.Settings.PollInterval,
            context.Settings.BadRows,
            r => context.Output.WriteLine(Describe(r)),
            reason => Console.Error.WriteLine($"sessionize: worker: {reason} (retrying at the next poll)"),
            stop);
        context.Output.WriteLine("worker: stopping; a batch in flight is not committed and will run again");
        return 0;
    }

    public static string Describe(object report) => report switch
    {
        CoordinatorProtocol.BatchReport { WatermarkMicros: { } watermark } r => DescribeEventTime(r, watermark),
        CoordinatorProtocol.BatchReport { Files: 0 } r => string.Create(
            CultureInfo.InvariantCulture,
            $"batch {r.Batch}: end of input, no files; {r.Completed} pending session{(r.Completed == 1 ? "" : "s")} completed{(r.Replayed ? ", replayed after restart" : "")} [{r.Elapsed.TotalMilliseconds:F0} ms]"),
        CoordinatorProtocol.BatchReport r => string.Create(
            CultureInfo.InvariantCulture,
            $"batch {r.Batch}: {r.Files} file{(r.Files == 1 ? "" : "s")} (visits_table v{r.FromVersion}..v{r.ToVersion}), {r.Visits} visits, {r.ActiveUsers} users, {r.Pending} pending, {r.Completed} completed{(r.Quarantined > 0 ? $", {r.Quarantined} quarantined" : "")}{(r.Replayed ? ", replayed after restart" : "")} [{r.Elapsed.TotalMilliseconds:F0} ms]"),
        CoordinatorProtocol.RewindReport r => string.Create(
            CultureInfo.InvariantCulture,
            $"rewound to the checkpoint at the start of batch {r.Batch}: took back {r.UndoneBatches} batch{(r.UndoneBatches == 1 ? "" : "es")}, reset {r.UsersReset} user session{(r.UsersReset == 1 ? "" : "s")}"),
        _ => report.ToString() ?? "",
    };

    private static string DescribeEventTime(CoordinatorProtocol.BatchReport r, long watermark)
    {
        var shown = watermark == Watermark.None ? "none" : Timestamps.ToSparkString(watermark);
        var what = r.Kind switch
        {
            CoordinatorProtocol.BatchKind.EndOfInput => "end of input, no files",
            CoordinatorProtocol.BatchKind.IdleClose => $"idle close, no files; watermark moved to {shown}",
            _ => $"{r.Files} file{(r.Files == 1 ? "" : "s")} (visits_table v{r.FromVersion}..v{r.ToVersion}), {r.Visits} visits, watermark {shown}",
        };
        return string.Create(
            CultureInfo.InvariantCulture,
            $"batch {r.Batch}: {what}; {r.ActiveUsers} user{(r.ActiveUsers == 1 ? "" : "s")}, {r.Completed} session{(r.Completed == 1 ? "" : "s")} written{(r.Corrected > 0 ? $" ({r.Corrected} earlier row{(r.Corrected == 1 ? "" : "s")} corrected)" : "")}, {r.Pending} open{(r.Late > 0 ? $", {r.Late} late" : "")}{(r.Quarantined > r.Late ? $", {r.Quarantined - r.Late} quarantined" : "")}{(r.Replayed ? ", replayed after restart" : "")} [{r.Elapsed.TotalMilliseconds:F0} ms]");
    }

    public static async Task<int> StatusAsync(CommandContext context, CancellationToken cancellationToken)
    {
        context.RequireBaseDirectory();
        var visits = VisitsTable.In(context.BaseDirectory);
        var available = visits.Delta.LatestVersion();
        var state = CoordinatorState.Initial;
        var stateDirectory = SessionizationConfig.StateDirectory(context.BaseDirectory);
        // Status creates no tables: a base directory without them has no pipeline yet, and so no state.
        var pipeline = Pipelines.Resolve(context.BaseDirectory, create: false);
        if (pipeline is not null && (!SessionizationConfig.IsSqlite(context.Config) || File.Exists(Path.Combine(stateDirectory, "journal.db"))))
        {
            await using var runtime = await SessionizerRuntime.StartAsync(context.Config, context.Settings, pipeline, cancellationToken);
            state = await runtime.GetStateAsync(cancellationToken);
        }

        var o = context.Output;
        o.WriteLine($"base directory:         {context.BaseDirectory}");
        o.WriteLine($"pipeline:               {pipeline?.PipelineId ?? "none yet (no output tables)"}");
        if (state.LastCommitted is { } last)
        {
            // In event-time mode a batch's pending rows are only the users it changed; the state counts every open session.
            var pending = SessionRules.IsEventTime(SessionRules.RecordedIn(state))
                ? last.Pending
                : (await SessionTable.Pending(context.BaseDirectory).ReadBatchAsync(last.Batch, cancellationToken)).Count;
            o.WriteLine($"last committed batch:   {last.Batch} ({last.Visits} visits, {last.Pending} pending, {last.Completed} completed)");
            o.WriteLine($"visits-table version:   consumed {last.LastVersion}, available {Show(available)}");
            o.WriteLine($"pending sessions:       {pending}");
            var retained = state.RetainedBatches.ToList();
            o.WriteLine($"retained checkpoints:   {retained.Count} (start of batches {retained[0]}..{retained[^1]})");
        }
        else
        {
            o.WriteLine("last committed batch:   none");
            o.WriteLine($"visits-table version:   consumed none, available {Show(available)}");
            o.WriteLine("pending sessions:       0");
            o.WriteLine("retained checkpoints:   0");
        }

        var latestVisit = state.LatestVisitMicros is { } latest ? Timestamps.ToSparkString(latest) + " UTC (in the committed batches)"
            : state.LastCommitted is null ? "none committed"
            : "not recorded (its batches were committed by an older version)";
        o.WriteLine($"latest visit_time:      {latestVisit}");
        o.WriteLine($"sessions:               {SessionRules.RecordedIn(state) ?? "not recorded yet (no batch)"}");
        if (state.WatermarkMicros is { } watermark)
            o.WriteLine($"watermark:              {(watermark == Watermark.None ? "none yet" : Timestamps.ToSparkString(watermark) + " UTC")}");
        o.WriteLine($"batch in flight:        {(state.InFlight is { } f ? $"{f.Batch} ({f.Files.Count} files, planned, not committed)" : "none")}");
        if (state.RewindingTo is { } rewinding)
            o.WriteLine($"rewind in progress:     to batch {rewinding} (the next run finishes it)");
        var disagreement = StateAgreement.Check(state, OutputTables.Batches(context.BaseDirectory));
        o.WriteLine($"state and tables:       {disagreement ?? "agree"}");
        return disagreement is null ? 0 : 1;
    }

    private static string Show(long? version) => version?.ToString(CultureInfo.InvariantCulture) ?? "none (no visits_table)";
}

using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Sessionization.Actors;
using Sessionization.Domain;
using Sessionization.Host.Configuration;
using Sessionization.Host.Output;
using Sessionization.Host.Runtime;
using Sessionization.Persistence;
using Sessionization.Persistence.Tables;

namespace Sessionization.Host.Commands;

/// <summary>The coordinator's commands: drain-and-exit, long-running worker, and status.</summary>
public static class RunCommands
{
    public static async Task<int> RunAsync(CommandContext context, CancellationToken cancellationToken, long? fromBatch = null, bool endOfInput = false)
    {
        // A misspelt --base-dir is refused rather than created: a new empty directory would report "nothing to do".
        context.RequireBaseDirectory();
        using var coordinatorLock = CoordinatorLock.Acquire(SessionizationConfig.StateDirectory(context.BaseDirectory), "run");
        await using var runtime = await SessionizerRuntime.StartAsync(context.Config, context.Settings, cancellationToken);
        // On a terminal a bar shows the visits done of those waiting, the rate and the time left.
        var total = context.ProgressTerminal is not null ? await VisitsWaitingAsync(context, runtime, cancellationToken) : 0;
        var started = DateTime.UtcNow;
        long done = 0;
        var batches = await LiveProgress.RunAsync(context.ProgressTerminal, "run: starting", total, progress => runtime.RunUntilDrainedAsync(
            context.Settings.MaxFilesPerBatch,
            fromBatch,
            context.Settings.BadRows,
            endOfInput,
            r =>
            {
                progress.WriteLine(context.Output, Describe(r));
                if (r is CoordinatorProtocol.BatchReport batch)
                {
                    done += batch.Visits;
                    var rate = done / Math.Max((DateTime.UtcNow - started).TotalSeconds, 0.001);
                    progress.Advance(batch.Visits, string.Create(CultureInfo.InvariantCulture, $"run: batch {batch.Batch}, {done:N0} of {total:N0} visits, {rate:N0} visits/s"));
                }
            },
            cancellationToken));
        context.Output.WriteLine(batches == 0
            ? endOfInput
                ? "run: no new visits and no pending sessions; no batch formed"
                : "run: no new visits since the last checkpoint; no batch formed"
            : $"run: {batches} batch{(batches == 1 ? "" : "es")} committed");
        return 0;
    }

    /// <summary>Visits committed to the visits table and not yet in a committed batch: what this run has ahead of it.</summary>
    private static async Task<long> VisitsWaitingAsync(CommandContext context, SessionizerRuntime runtime, CancellationToken cancellationToken)
    {
        var visits = VisitsTable.In(context.BaseDirectory);
        if (visits.Delta.LatestVersion() is not { } latest)
            return 0;
        var state = await runtime.GetStateAsync(cancellationToken);
        return new VisitsBacklog(visits).Measure(state.Cursor, latest).Visits;
    }

    public static async Task<int> WorkerAsync(CommandContext context, CancellationToken stop, int? metricsPort = null)
    {
        // The endpoint comes up first: a worker waiting for its base directory is alive and says why it is not ready.
        await using var endpoint = metricsPort is { } port ? await ServiceEndpoint.StartAsync(port, stop) : null;
        if (endpoint is not null)
            context.Output.WriteLine($"worker: metrics on http://0.0.0.0:{endpoint.Port}/metrics, health on /healthz and /readyz");
        endpoint?.NotReady($"base directory {context.BaseDirectory} does not exist");
        // A service's warnings belong on its standard error, where its supervisor collects them.
        var config = Akka.Configuration.ConfigurationFactory.ParseString("sessionization.log-to-console = on").WithFallback(context.Config);
        if (!await BaseDirectoryAppearedAsync(context, config, stop))
            return 0;
        endpoint?.NotReady("starting");
        using var coordinatorLock = CoordinatorLock.Acquire(SessionizationConfig.StateDirectory(context.BaseDirectory), "worker");
        await using var runtime = await SessionizerRuntime.StartAsync(config, context.Settings, stop);
        endpoint?.Attach(runtime);
        var log = runtime.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Sessionization.Worker");
        log.LogInformation(
            "worker started: polling {VisitsTable} every {PollIntervalMs} ms, pid {Pid}, metrics port {MetricsPort}",
            VisitsTable.In(context.BaseDirectory).Delta.Root,
            (long)context.Settings.PollInterval.TotalMilliseconds,
            Environment.ProcessId,
            metricsPort?.ToString(CultureInfo.InvariantCulture) ?? "off");
        context.Output.WriteLine($"worker: polling {VisitsTable.In(context.BaseDirectory).Delta.Root} every {context.Settings.PollInterval.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s; Ctrl+C or SIGTERM stops");
        await runtime.PollUntilStoppedAsync(
            context.Settings.MaxFilesPerBatch,
            context.Settings.PollInterval,
            context.Settings.BadRows,
            r => context.Output.WriteLine(Describe(r)),
            stop);
        endpoint?.NotReady("stopping");
        // Asked before the actors stop: a batch planned and not committed is run again by the next run or worker.
        context.Output.WriteLine(await StoppingLineAsync(runtime, log));
        return 0;
    }

    private static async Task<string> StoppingLineAsync(SessionizerRuntime runtime, ILogger log)
    {
        try
        {
            using var asking = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var inFlight = (await runtime.GetStateAsync(asking.Token)).InFlight?.Batch;
            log.LogInformation("worker stopping; batch in flight: {InFlightBatch}", inFlight?.ToString(CultureInfo.InvariantCulture) ?? "none");
            return inFlight is { } batch
                ? $"worker: stopping; batch {batch} was in flight, is not committed, and will run again"
                : "worker: stopping; no batch in flight";
        }
        catch (Exception e) when (e is OperationCanceledException or Akka.Actor.AskTimeoutException)
        {
            log.LogInformation("worker stopping; the coordinator did not say whether a batch was in flight");
            return "worker: stopping";
        }
    }

    /// <summary>
    /// A worker may be started before anything has written its base directory (a service comes up before its data):
    /// it waits for the directory, saying so at once and then once a minute, instead of creating it, so a misspelt
    /// --base-dir is seen. False when stopped while waiting.
    /// </summary>
    private static async Task<bool> BaseDirectoryAppearedAsync(CommandContext context, Akka.Configuration.Config config, CancellationToken stop)
    {
        if (Directory.Exists(context.BaseDirectory))
            return true;
        // Standard error only: the log file lives in the base directory that is not there.
        using var log = Logs.Create(config, file: null);
        var said = DateTime.MinValue;
        while (!Directory.Exists(context.BaseDirectory))
        {
            if (File.Exists(context.BaseDirectory))
                context.RequireBaseDirectory();
            if (DateTime.UtcNow - said >= TimeSpan.FromMinutes(1))
            {
                log.Warning("worker: base directory {BaseDirectory} does not exist; waiting for it (check --base-dir)", context.BaseDirectory);
                said = DateTime.UtcNow;
            }

            try
            {
                await Task.Delay(context.Settings.PollInterval, stop);
            }
            catch (OperationCanceledException)
            {
                context.Output.WriteLine("worker: stopped before its base directory appeared");
                return false;
            }
        }

        return true;
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
        CoordinatorProtocol.CompactionReport r =>
            $"compacted the files of batches 0..{r.Before - 1}: {Persistence.Tables.Compaction.Describe(r.Results)}",
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

    public static async Task<int> StatusAsync(CommandContext context, CancellationToken cancellationToken, bool json = false)
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

        long pending = 0;
        if (state.LastCommitted is { } last)
        {
            // In event-time mode a batch's pending rows are only the users it changed; the state counts every open session.
            pending = SessionRules.IsEventTime(SessionRules.RecordedIn(state))
                ? last.Pending
                : (await SessionTable.Pending(context.BaseDirectory).ReadBatchAsync(last.Batch, cancellationToken)).Count;
        }

        var disagreement = StateAgreement.Check(state, OutputTables.Batches(context.BaseDirectory));
        var backlog = available is { } latest ? new VisitsBacklog(visits).Measure(state.Cursor, latest) : null;
        var status = new Status(context.BaseDirectory, pipeline?.PipelineId, state, available, pending, disagreement)
        {
            Backlog = backlog,
            Activity = CoordinatorActivity.Read(context.BaseDirectory),
            Coordinator = CoordinatorLock.ActiveOwner(stateDirectory),
            Tables = TableFilesOf(context, state),
        };
        context.Output.Write(json ? status.ToJson() : status.ToText());
        return disagreement is null ? 0 : 1;
    }

    /// <summary>The session tables' live files, and how many of them an <c>optimize</c> now would join.</summary>
    private static List<TableFiles> TableFilesOf(CommandContext context, CoordinatorState state)
    {
        var before = Compaction.CompactBefore(state) ?? 0;
        var files = new List<TableFiles>();
        foreach (var table in new[] { SessionTable.Pending(context.BaseDirectory), SessionTable.Completed(context.BaseDirectory) })
        {
            if (!table.Delta.Exists)
                continue;
            var live = table.Delta.LoadSnapshot().Files;
            var plan = before > 0 ? table.CompactionPlan(before, context.Settings.OptimizeTargetBytes, live) : [];
            files.Add(new TableFiles(table.Name, live.Count, live.Sum(f => f.Size), plan.Sum(b => b.Files.Count), plan.Count));
        }

        return files;
    }

    private sealed record TableFiles(string Table, int Files, long Bytes, int Compactable, int CompactedInto);

    /// <summary>What <c>status</c> shows, as text for a person or as one JSON document for a script or a monitor.</summary>
    private sealed record Status(string BaseDirectory, string? PipelineId, CoordinatorState State, long? Available, long Pending, string? Disagreement)
    {
        private long? Consumed => State.LastCommitted?.LastVersion;

        /// <summary>Visits-table versions committed and not yet consumed by a committed batch.</summary>
        private long? VersionsBehind => Available is { } a ? a - (Consumed ?? -1) : null;

        public Backlog? Backlog { get; init; }

        public CoordinatorActivity Activity { get; init; } = CoordinatorActivity.None;

        public IReadOnlyList<TableFiles> Tables { get; init; } = [];

        private string TablesText => Tables.Count == 0
            ? "none yet"
            : string.Join(", ", Tables.Select(t => $"{t.Table} {t.Files} ({Compaction.FormatSize(t.Bytes)})"))
                + (Tables.Sum(t => t.Compactable) is var compactable and > 0
                    ? $"; optimize would join {compactable} of them into {Tables.Sum(t => t.CompactedInto)}"
                    : "; nothing for optimize to join");

        /// <summary>Who holds the coordinator lock now (a run or a worker), or null.</summary>
        public string? Coordinator { get; init; }

        private double? LagSeconds => Backlog?.OldestCommit is { } oldest ? Math.Max(0, (DateTimeOffset.UtcNow - oldest).TotalSeconds) : Backlog is null ? null : 0;

        private static string? Iso(DateTimeOffset? time) => time?.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", CultureInfo.InvariantCulture);

        /// <summary>A failure counts as backing off only while a coordinator runs to try again; otherwise it is the last attempt's outcome.</summary>
        private bool BackingOff => Activity.FailuresInARow > 0 && Coordinator is not null;

        private string LastBatchText => Activity.LastBatch is { } batch
            ? string.Create(
                CultureInfo.InvariantCulture,
                $"batch {batch} took {Activity.LastBatchDurationMs:F0} ms for {Activity.LastBatchVisits} visits ({Activity.LastBatchRate:F0} visits/s), committed {Activity.LastBatchCommittedAt:yyyy-MM-dd HH:mm:ss} UTC")
            : "not recorded (no batch committed by this version yet)";

        private string LagText => Backlog is not { Versions: > 0 } b
            ? "none"
            : string.Create(CultureInfo.InvariantCulture, $"{b.Versions} version{(b.Versions == 1 ? "" : "s")}, {b.Visits} visits; oldest unprocessed commit {LagSeconds:F0} s ago");

        private string BackoffText => Activity.FailuresInARow == 0
            ? "none"
            : BackingOff
                ? string.Create(CultureInfo.InvariantCulture, $"{Activity.FailuresInARow} failure{(Activity.FailuresInARow == 1 ? "" : "s")} in a row; next attempt at {Activity.NextAttemptAt:yyyy-MM-dd HH:mm:ss} UTC: {Activity.LastFailure}")
                : $"none running; the last attempt failed: {Activity.LastFailure}";

        public string ToText()
        {
            var o = new StringWriter();
            o.WriteLine($"base directory:         {BaseDirectory}");
            o.WriteLine($"pipeline:               {PipelineId ?? "none yet (no output tables)"}");
            if (State.LastCommitted is { } last)
            {
                o.WriteLine($"last committed batch:   {last.Batch} ({last.Visits} visits, {last.Pending} pending, {last.Completed} completed)");
                o.WriteLine($"visits-table version:   consumed {last.LastVersion}, available {Show(Available)}");
                o.WriteLine($"pending sessions:       {Pending}");
                var retained = State.RetainedBatches.ToList();
                o.WriteLine($"retained checkpoints:   {retained.Count} (start of batches {retained[0]}..{retained[^1]})");
            }
            else
            {
                o.WriteLine("last committed batch:   none");
                o.WriteLine($"visits-table version:   consumed none, available {Show(Available)}");
                o.WriteLine("pending sessions:       0");
                o.WriteLine("retained checkpoints:   0");
            }

            var latestVisit = State.LatestVisitMicros is { } latest ? Timestamps.ToSparkString(latest) + " UTC (in the committed batches)"
                : State.LastCommitted is null ? "none committed"
                : "not recorded (its batches were committed by an older version)";
            o.WriteLine($"latest visit_time:      {latestVisit}");
            o.WriteLine($"sessions:               {SessionRules.RecordedIn(State) ?? "not recorded yet (no batch)"}");
            if (State.WatermarkMicros is { } watermark)
                o.WriteLine($"watermark:              {(watermark == Watermark.None ? "none yet" : Timestamps.ToSparkString(watermark) + " UTC")}");
            o.WriteLine($"coordinator:            {Coordinator ?? "none running"}");
            o.WriteLine($"last batch:             {LastBatchText}");
            o.WriteLine($"lag:                    {LagText}");
            o.WriteLine($"backoff:                {BackoffText}");
            o.WriteLine($"table files:            {TablesText}");
            o.WriteLine($"batch in flight:        {(State.InFlight is { } f ? $"{f.Batch} ({f.Files.Count} files, planned, not committed)" : "none")}");
            if (State.RewindingTo is { } rewinding)
                o.WriteLine($"rewind in progress:     to batch {rewinding} (the next run finishes it)");
            o.WriteLine($"state and tables:       {Disagreement ?? "agree"}");
            return o.ToString();
        }

        /// <summary>The same facts with stable snake_case names; a time is ISO-8601 UTC, an absent fact is null.</summary>
        public string ToJson()
        {
            var last = State.LastCommitted;
            var retained = State.RetainedBatches.ToList();
            var root = new System.Text.Json.Nodes.JsonObject
            {
                ["base_directory"] = BaseDirectory,
                ["pipeline"] = PipelineId,
                ["last_committed_batch"] = last is null ? null : new System.Text.Json.Nodes.JsonObject
                {
                    ["batch"] = last.Batch,
                    ["visits"] = last.Visits,
                    ["pending"] = last.Pending,
                    ["completed"] = last.Completed,
                },
                ["visits_table_version"] = new System.Text.Json.Nodes.JsonObject { ["consumed"] = Consumed, ["available"] = Available, ["behind"] = VersionsBehind },
                ["pending_sessions"] = Pending,
                ["lag"] = Backlog is not { } b ? null : new System.Text.Json.Nodes.JsonObject
                {
                    ["versions"] = b.Versions,
                    ["visits"] = b.Visits,
                    ["oldest_unprocessed_commit"] = Iso(b.OldestCommit),
                    ["seconds"] = LagSeconds,
                },
                ["coordinator"] = Coordinator,
                ["last_batch"] = Activity.LastBatch is not { } batch ? null : new System.Text.Json.Nodes.JsonObject
                {
                    ["batch"] = batch,
                    ["committed_at"] = Iso(Activity.LastBatchCommittedAt),
                    ["duration_ms"] = Activity.LastBatchDurationMs,
                    ["visits"] = Activity.LastBatchVisits,
                    ["visits_per_second"] = Activity.LastBatchRate,
                },
                ["backoff"] = new System.Text.Json.Nodes.JsonObject
                {
                    ["backing_off"] = BackingOff,
                    ["failures_in_a_row"] = Activity.FailuresInARow,
                    ["next_attempt_at"] = BackingOff ? Iso(Activity.NextAttemptAt) : null,
                    ["last_failure"] = Activity.LastFailure,
                },
                ["retained_checkpoints"] = new System.Text.Json.Nodes.JsonObject
                {
                    ["count"] = retained.Count,
                    ["first_batch"] = retained.Count == 0 ? null : retained[0],
                    ["last_batch"] = retained.Count == 0 ? null : retained[^1],
                },
                ["latest_visit_time"] = State.LatestVisitMicros is { } latest ? Timestamps.ToIsoString(latest) : null,
                ["sessions"] = SessionRules.RecordedIn(State),
                ["watermark"] = State.WatermarkMicros is { } w && w != Watermark.None ? Timestamps.ToIsoString(w) : null,
                ["table_files"] = new System.Text.Json.Nodes.JsonObject(Tables.Select(t => KeyValuePair.Create(t.Table, (System.Text.Json.Nodes.JsonNode?)new System.Text.Json.Nodes.JsonObject
                {
                    ["files"] = t.Files,
                    ["bytes"] = t.Bytes,
                    ["compactable_files"] = t.Compactable,
                }))),
                ["batch_in_flight"] = State.InFlight is { } f ? new System.Text.Json.Nodes.JsonObject { ["batch"] = f.Batch, ["files"] = f.Files.Count } : null,
                ["rewind_in_progress_to"] = State.RewindingTo,
                ["state_and_tables_agree"] = Disagreement is null,
                ["disagreement"] = Disagreement,
            };
            return root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n";
        }
    }

    private static string Show(long? version) => version?.ToString(CultureInfo.InvariantCulture) ?? "none (no visits_table)";
}

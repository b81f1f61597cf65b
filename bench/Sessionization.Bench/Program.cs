using System.CommandLine;
using System.Globalization;
using System.Runtime;
using System.Text.Json.Nodes;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;

namespace Sessionization.Bench;

/// <summary>
/// The project's benchmark: ours (the full incremental pipeline, one <c>run</c> process per slice of new
/// commits) against the I/O floor (Parquet.Net read and write, no state) and a DuckDB peer (the same semantics
/// in SQL), on the same files, plus growth with history, memory per pending user, recovery and start-up.
/// </summary>
public static class Program
{
    public static Task<int> Main(string[] args) => RunAsync(args, Console.Out, Console.Error);

    /// <summary>Runs the benchmark with its report written to <paramref name="stdout"/> and progress to <paramref name="stderr"/> (or stdout without --json).</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var users = new Option<long>("--users") { DefaultValueFactory = _ => 1_000_000, Description = "Distinct users" };
        var visits = new Option<long>("--visits") { DefaultValueFactory = _ => 10_000_000, Description = "Visits in all" };
        var runs = new Option<int>("--runs") { DefaultValueFactory = _ => 10, Description = "Runs (slices of new commits)" };
        var commits = new Option<int>("--commits-per-run") { DefaultValueFactory = _ => 4, Description = "Commits in each run's slice" };
        var seed = new Option<ulong>("--seed") { DefaultValueFactory = _ => 1, Description = "Workload seed" };
        var baseDir = new Option<string?>("--base-dir") { Description = "Work directory (default: a new one under the system temp directory)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of the table" };
        var sections = new Option<string>("--sections")
        {
            DefaultValueFactory = _ => "main,worker,history,memory,walkthrough,readers",
            Description = "Which measurements: main (a run per slice: ours/floor/peer), worker (one worker catches up every slice; needs main), history (growth), memory (and recovery), walkthrough, readers (the read commands over 1M visits in 10 batches)",
        };
        var probe = new Option<long>("--history-probe-visits") { DefaultValueFactory = _ => 100_000, Description = "Visits in the batch timed after a short and a long history" };
        var history = new Option<string>("--history-batches") { DefaultValueFactory = _ => "10,200", Description = "Earlier batches before the probe: short,long" };
        var pendingUsers = new Option<long>("--pending-users") { DefaultValueFactory = _ => 1_000_000, Description = "Pending users for the memory and recovery measurements" };
        var host = new Option<string>("--host") { Required = true, Description = "Path of the built sessionize.dll (the launcher passes it)" };
        var mode = new Option<string>("--mode")
        {
            DefaultValueFactory = _ => "batches",
            Description = "Session mode: batches (the seed's rule) or event-time (sections main, worker and touch, against an event-time DuckDB peer)",
        };
        mode.AcceptOnlyFromAmong("batches", "event-time");
        var gap = new Option<string>("--gap") { DefaultValueFactory = _ => "30m", Description = "event-time: the inactivity gap" };
        var maxDuration = new Option<string>("--max-duration") { DefaultValueFactory = _ => "off", Description = "event-time: the maximum session duration" };
        var workerRepeats = new Option<int>("--worker-repeats") { DefaultValueFactory = _ => 3, Description = "Times the worker and its peer are each timed (medians compared)" };
        workerRepeats.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
                r.AddError("--worker-repeats must be at least 1");
        });
        var root = new RootCommand("Sessionization benchmark: ours vs the Parquet I/O floor vs a DuckDB peer")
        {
            users, visits, runs, commits, seed, baseDir, json, sections, probe, history, pendingUsers, host, mode, gap, maxDuration, workerRepeats,
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            stderr.WriteLine($"sessionize bench: {string.Join("; ", parsed.Errors.Select(e => e.Message))}");
            return 2;
        }

        root.SetAction(p => RunAsync(stdout, stderr, new Options(
            p.GetValue(users), p.GetValue(visits), p.GetValue(runs), p.GetValue(commits), p.GetValue(seed), p.GetValue(baseDir), p.GetValue(json),
            p.GetValue(sections)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet(),
            p.GetValue(probe), p.GetValue(history)!.Split(',').Select(int.Parse).ToArray(), p.GetValue(pendingUsers), p.GetValue(host)!)
        {
            EventTime = p.GetValue(mode) == "event-time" ? EventTimeOptions.Parse(p.GetValue(gap)!, p.GetValue(maxDuration)!) : null,
            SectionsGiven = p.GetResult(sections) is { Implicit: false },
            WorkerRepeats = p.GetValue(workerRepeats),
        }));
        try
        {
            return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            stderr.WriteLine($"sessionize bench: {e.Message.Split('\n')[0]}");
            return 1;
        }
    }

    private sealed record Options(
        long Users, long Visits, int Runs, int CommitsPerRun, ulong Seed, string? BaseDir, bool Json, HashSet<string> Sections,
        long ProbeVisits, int[] HistoryBatches, long PendingUsers, string HostDll)
    {
        /// <summary>Set in event-time mode.</summary>
        public EventTimeOptions? EventTime { get; init; }

        public bool SectionsGiven { get; init; }

        public int WorkerRepeats { get; init; } = 3;

        /// <summary>The session flags every <c>run</c> and <c>worker</c> of ours gets.</summary>
        public string[] SessionFlags => EventTime?.Flags ?? [];
    }

    private sealed record EventTimeOptions(long GapMicros, long? MaxDurationMicros, string[] Flags)
    {
        public static EventTimeOptions Parse(string gap, string maxDuration)
        {
            var gapMicros = Durations.TryParseMicros(gap) is { } g and > 0 ? g : throw new InvalidOperationException($"--gap '{gap}' is not a positive duration like 30m");
            long? max = maxDuration == "off" ? null
                : Durations.TryParseMicros(maxDuration) is { } m and > 0 ? m : throw new InvalidOperationException($"--max-duration '{maxDuration}' is not a positive duration like 24h, or off");
            return new EventTimeOptions(gapMicros, max, ["--mode", "event-time", "--gap", gap, "--max-duration", maxDuration]);
        }
    }

    private sealed record RunTimes(int Run, long Visits, double Ours, double Floor, double Peer, long Pending, long Completed);

    private static async Task<int> RunAsync(TextWriter stdout, TextWriter stderr, Options o)
    {
        var root = Path.GetFullPath(o.BaseDir ?? Path.Combine(Path.GetTempPath(), $"sessionization-bench-{DateTime.UtcNow:yyyyMMdd-HHmmss}"));
        if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
            throw new InvalidOperationException($"bench needs a fresh directory, and {root} is not empty");
        Directory.CreateDirectory(root);
        var host = new Host(o.HostDll);
        var report = new JsonObject
        {
            ["users"] = o.Users,
            ["visits"] = o.Visits,
            ["runs"] = o.Runs,
            ["machine"] = $"{Environment.ProcessorCount} cores, .NET {Environment.Version}, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
        };
        var log = o.Json ? stderr : stdout;
        log.WriteLine($"bench in {root}");
        if (o.EventTime is not null)
        {
            report["mode"] = string.Join(' ', o.SessionFlags);
            // In event-time mode the batches-mode sections give way to the touch measurement, unless asked for by name.
            if (!o.SectionsGiven)
                o = o with { Sections = ["main", "worker", "touch"] };
        }

        async Task MeasureAsync(TextWriter log)
        {
            if (o.Sections.Contains("main"))
                await MainComparisonAsync(o, host, Path.Combine(root, "main"), report, log);
            if (o.Sections.Contains("history"))
                HistoryGrowth(o, host, Path.Combine(root, "history"), report, log);
            if (o.Sections.Contains("memory"))
                await MemoryAndRecoveryAsync(o, host, Path.Combine(root, "memory"), report, log);
            if (o.Sections.Contains("walkthrough"))
                Walkthrough(host, Path.Combine(root, "walkthrough"), report, log);
            if (o.Sections.Contains("readers"))
                Readers(o, host, Path.Combine(root, "readers"), report, log);
            if (o.Sections.Contains("touch") && o.EventTime is not null)
                await TouchAsync(o, host, Path.Combine(root, "touch"), report, log);
        }

        if (BenchProgress.Available(o.Json))
            await BenchProgress.RunAsync(Measurements(o), MeasureAsync);
        else
            await MeasureAsync(log);

        if (o.Json)
            stdout.WriteLine(report.ToJsonString());
        else
            stdout.Write(Render(o, report));
        return report["outputs_agree"] is JsonValue agree && !agree.GetValue<bool>() ? 1 : 0;
    }

    /// <summary>The lines the chosen sections report, one per measurement: the progress bar's length.</summary>
    private static int Measurements(Options o)
    {
        var count = 0;
        if (o.Sections.Contains("main"))
            count += o.Runs + (o.Sections.Contains("worker") ? o.WorkerRepeats : 0);
        if (o.Sections.Contains("history"))
            count += o.HistoryBatches.Length;
        if (o.Sections.Contains("memory"))
            count += 2;
        if (o.Sections.Contains("walkthrough"))
            count += 1;
        if (o.Sections.Contains("readers"))
            count += ReaderCommands.Length;
        if (o.Sections.Contains("touch") && o.EventTime is not null)
            count += 1;
        return count;
    }

    private static async Task MainComparisonAsync(Options o, Host host, string dir, JsonObject report, TextWriter log)
    {
        var workload = new Workload(o.Users, o.Visits, o.Runs, o.CommitsPerRun, o.Seed);
        var ours = Path.Combine(dir, "ours");
        var table = VisitsTable.In(ours);
        Directory.CreateDirectory(dir);
        using var peer = new DuckDbPeer(Path.Combine(dir, "peer.duckdb"));
        using var eventTimePeer = o.EventTime is { } et ? new EventTimePeer(Path.Combine(dir, "event-time-peer.duckdb"), et.GapMicros, et.MaxDurationMicros, 0) : null;
        var perRun = new List<RunTimes>();
        long peak = 0;
        var cursor = SourceCursor.Start;
        for (var run = 0; run < o.Runs; run++)
        {
            long runVisits = 0;
            foreach (var commit in workload.Commits(run))
            {
                runVisits += commit.Count;
                await table.AppendAsync(commit, "bench");
            }

            var files = table.FilesFrom(cursor).ToList();
            cursor = files[^1].Next;

            var oursRun = host.Run(ours, ["run", "--max-files-per-batch", "1000000", .. o.SessionFlags]);
            peak = Math.Max(peak, oursRun.PeakRssBytes);
            var pending = await SessionTable.Pending(ours).ReadBatchAsync(run);
            var completed = await SessionTable.Completed(ours).ReadBatchAsync(run);
            var floor = await Floor.RunAsync(table, files, pending, completed, Path.Combine(dir, "floor"));
            var paths = files.Select(f => table.Delta.DataFilePath(f.Path)).ToList();
            var peerTime = eventTimePeer?.Run(run, paths) ?? peer.Run(run, paths);
            perRun.Add(new RunTimes(run, runVisits, oursRun.Wall.TotalSeconds, floor.TotalSeconds, peerTime.TotalSeconds, pending.Count, completed.Count));
            log.WriteLine(FormattableString.Invariant(
                $"run {run}: {runVisits} visits; ours {oursRun.Wall.TotalSeconds:F2}s, floor {floor.TotalSeconds:F2}s, peer {peerTime.TotalSeconds:F2}s; {pending.Count} pending, {completed.Count} completed"));
        }

        var (pendingMissing, pendingExtra, sessionsMissing, sessionsExtra) = Disagreement(peer, eventTimePeer, ours);
        var agree = pendingMissing + pendingExtra + sessionsMissing + sessionsExtra == 0;
        if (o.Sections.Contains("worker"))
            agree &= await WorkerComparisonAsync(o, host, workload, peer, eventTimePeer, Path.Combine(dir, "worker"), report, log);

        var oursTotal = perRun.Sum(r => r.Ours);
        var floorTotal = perRun.Sum(r => r.Floor);
        var peerTotal = perRun.Sum(r => r.Peer);
        report["ours_s"] = Math.Round(oursTotal, 3);
        report["floor_s"] = Math.Round(floorTotal, 3);
        report["peer_s"] = Math.Round(peerTotal, 3);
        report["ours_visits_per_s"] = Math.Round(o.Visits / oursTotal);
        report["floor_visits_per_s"] = Math.Round(o.Visits / floorTotal);
        report["peer_visits_per_s"] = Math.Round(o.Visits / peerTotal);
        report["ours_over_floor"] = Math.Round(floorTotal / oursTotal, 4);
        report["ours_over_peer"] = Math.Round(peerTotal / oursTotal, 4);
        report["outputs_agree"] = agree;
        report["disagreement"] = new JsonObject
        {
            ["pending_missing"] = pendingMissing,
            ["pending_extra"] = pendingExtra,
            ["sessions_missing"] = sessionsMissing,
            ["sessions_extra"] = sessionsExtra,
        };
        report["peak_rss_bytes"] = peak;
        report["state_bytes"] = DirectorySize(Path.Combine(ours, "state"));
        report["per_run"] = new JsonArray([.. perRun.Select(r => (JsonNode)new JsonObject
        {
            ["run"] = r.Run, ["visits"] = r.Visits, ["ours_s"] = Math.Round(r.Ours, 3), ["floor_s"] = Math.Round(r.Floor, 3), ["peer_s"] = Math.Round(r.Peer, 3),
            ["pending"] = r.Pending, ["completed"] = r.Completed,
        })]);
    }

    /// <summary>
    /// The same workload caught up by one <c>sessionize worker</c> process, one batch per run's slice of commits,
    /// timed from the process's start to its last batch committed, and its output compared with the peer's. The worker
    /// and a peer of its own (a new database, the same slices, the runs' times summed) are each timed
    /// <see cref="Options.WorkerRepeats"/> times, alternating which goes first, each from nothing; the medians are
    /// compared. One timing of each varied by a third on this virtual machine (see <see cref="LetGoOfMemory"/>).
    /// </summary>
    private static async Task<bool> WorkerComparisonAsync(
        Options o, Host host, Workload workload, DuckDbPeer peer, EventTimePeer? eventTimePeer, string dir, JsonObject report, TextWriter log)
    {
        var first = Path.Combine(dir, "1");
        var table = VisitsTable.In(first);
        var slices = new List<List<string>>();
        var cursor = SourceCursor.Start;
        for (var run = 0; run < o.Runs; run++)
        {
            foreach (var commit in workload.Commits(run))
                await table.AppendAsync(commit, "bench");
            var files = table.FilesFrom(cursor).ToList();
            cursor = files[^1].Next;
            slices.Add([.. files.Select(f => table.Delta.DataFilePath(f.Path))]);
        }

        var workerTimes = new List<double>();
        var peerTimes = new List<double>();
        long peak = 0;
        var agree = true;
        for (var repeat = 1; repeat <= o.WorkerRepeats; repeat++)
        {
            var repeatDir = Path.Combine(dir, repeat.ToString(CultureInfo.InvariantCulture));
            if (repeat > 1)
                CopyDirectory(table.Delta.Root, VisitsTable.In(repeatDir).Delta.Root);
            var peerPath = Path.Combine(dir, $"peer-{repeat}.duckdb");
            double? peerTime = null;
            // The peer goes first in odd repeats and second in even ones: whichever runs second gets memory the first
            // has just given back.
            if (repeat % 2 == 1)
                peerTime = TimePeer(o, slices, peerPath);
            var (heldBefore, heldAfter) = LetGoOfMemory(peer, eventTimePeer);
            var (wall, workerPeak) = await TimeWorkerAsync(o, host, repeatDir);
            peerTime ??= TimePeer(o, slices, peerPath);
            peak = Math.Max(peak, workerPeak);
            var (pendingMissing, pendingExtra, sessionsMissing, sessionsExtra) = Disagreement(peer, eventTimePeer, repeatDir);
            var outputsAgree = pendingMissing + pendingExtra + sessionsMissing + sessionsExtra == 0;
            agree &= outputsAgree;
            workerTimes.Add(wall);
            peerTimes.Add(peerTime.Value);
            log.WriteLine(FormattableString.Invariant(
                $"worker {repeat} of {o.WorkerRepeats}: {o.Runs} batches in {wall:F2}s (peer {peerTime:F2}s{(repeat % 2 == 1 ? ", timed first" : "")}); outputs agree: {(outputsAgree ? "yes" : "NO")}; the bench held {heldBefore} MiB, {heldAfter} MiB after letting go"));
        }

        var worker = Median(workerTimes);
        var peerMedian = Median(peerTimes);
        report["worker_s"] = Math.Round(worker, 3);
        report["worker_runs_s"] = new JsonArray([.. workerTimes.Select(t => (JsonNode)Math.Round(t, 3))]);
        report["worker_peer_s"] = Math.Round(peerMedian, 3);
        report["worker_peer_runs_s"] = new JsonArray([.. peerTimes.Select(t => (JsonNode)Math.Round(t, 3))]);
        report["worker_visits_per_s"] = Math.Round(o.Visits / worker);
        report["worker_over_peer"] = Math.Round(peerMedian / worker, 4);
        report["worker_peak_rss_bytes"] = peak;
        report["worker_outputs_agree"] = agree;
        return agree;
    }

    /// <summary>One worker from an empty state over the visits table in <paramref name="dir"/>: its wall time to the last batch, and its peak memory.</summary>
    private static async Task<(double Wall, long Peak)> TimeWorkerAsync(Options o, Host host, string dir)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var worker = host.Start(dir, ["worker", "--max-files-per-batch", Text(o.CommitsPerRun), "--poll-interval", "100ms", .. o.SessionFlags]);
        var last = $"batch {o.Runs - 1}:";
        string? line;
        var batches = 0;
        while ((line = await worker.StandardOutput.ReadLineAsync()) is not null)
        {
            if (!line.StartsWith("batch ", StringComparison.Ordinal))
                continue;
            batches++;
            if (line.StartsWith(last, StringComparison.Ordinal))
                break;
        }

        var wall = clock.Elapsed.TotalSeconds;
        if (batches < o.Runs)
            throw new InvalidOperationException($"the worker stopped after {batches} of {o.Runs} batches: {(await worker.StandardError.ReadToEndAsync()).Trim()}");
        // A clean stop (SIGTERM), so that the worker reports its peak memory like a run does.
        System.Diagnostics.Process.Start("kill", ["-TERM", worker.Id.ToString(CultureInfo.InvariantCulture)])!.WaitForExit();
        var stderr = worker.StandardError.ReadToEndAsync();
        await worker.WaitForExitAsync();
        return (wall, Host.PeakRss(await stderr));
    }

    /// <summary>A peer of the worker's, in a new database at <paramref name="path"/>: the runs' times summed. The database is deleted after.</summary>
    private static double TimePeer(Options o, List<List<string>> slices, string path)
    {
        var total = TimeSpan.Zero;
        using (var eventTime = o.EventTime is { } et ? new EventTimePeer(path, et.GapMicros, et.MaxDurationMicros, 0) : null)
        using (var batches = eventTime is null ? new DuckDbPeer(path) : null)
        {
            for (var run = 0; run < slices.Count; run++)
                total += eventTime?.Run(run, slices[run]) ?? batches!.Run(run, slices[run]);
        }

        File.Delete(path);
        File.Delete(path + ".wal");
        return total.TotalSeconds;
    }

    /// <summary>
    /// The rows of ours in <paramref name="dir"/> that the peer's tables lack (missing) or do not have (extra). In
    /// event-time mode <c>pending_sessions</c> holds each batch's changes, which the peer does not keep: only
    /// <c>sessions</c> is compared.
    /// </summary>
    private static (long PendingMissing, long PendingExtra, long SessionsMissing, long SessionsExtra) Disagreement(
        DuckDbPeer peer, EventTimePeer? eventTimePeer, string dir)
    {
        var pending = SessionTable.Pending(dir);
        var completed = SessionTable.Completed(dir);
        var (pendingMissing, pendingExtra) = eventTimePeer is null ? peer.Compare("peer_pending", [.. pending.Delta.LoadSnapshot().Files.Select(f => pending.Delta.DataFilePath(f.Path))]) : (0, 0);
        List<string> sessionFiles = [.. completed.Delta.LoadSnapshot().Files.Select(f => completed.Delta.DataFilePath(f.Path))];
        var (sessionsMissing, sessionsExtra) = eventTimePeer?.Compare(sessionFiles) ?? peer.Compare("peer_sessions", sessionFiles);
        return (pendingMissing, pendingExtra, sessionsMissing, sessionsExtra);
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        var middle = sorted.Count / 2;
        return sorted.Count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (var directory in Directory.EnumerateDirectories(from))
            CopyDirectory(directory, Path.Combine(to, Path.GetFileName(directory)));
    }

    /// <summary>
    /// Gives back what this process holds before the worker, a process of its own, is timed: the peers' DuckDB buffers
    /// and the collector's free space. On a virtual machine, memory the guest has not touched lately is slow to touch
    /// (the host backs it again): with another process holding 1.6 GB, the 1M-visit worker took 12.5-13.9 s against
    /// 10.6-10.8 s. Held by this process, idle while the worker runs, that cost would be the bench's, not the worker's.
    /// </summary>
    /// <returns>This process's resident memory before and after, in MiB.</returns>
    private static (long Before, long After) LetGoOfMemory(DuckDbPeer peer, EventTimePeer? eventTimePeer)
    {
        var before = Environment.WorkingSet;
        peer.LetGoOfMemory();
        eventTimePeer?.LetGoOfMemory();
        GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        return (before / 1048576, Environment.WorkingSet / 1048576);
    }

    /// <summary>The same probe batch, timed after a short and after a long history of earlier batches.</summary>
    private static void HistoryGrowth(Options o, Host host, string dir, JsonObject report, TextWriter log)
    {
        var results = new JsonArray();
        foreach (var earlier in o.HistoryBatches)
        {
            var data = Path.Combine(dir, $"after-{earlier}");
            // Earlier batches: small commits over the probe's user range, one batch each.
            host.Run(data, "generate", "--users", "20000", "--visits", Text(earlier * 500L), "--commits", Text(earlier), "--seed", "11");
            host.Run(data, "run", "--max-files-per-batch", "1");
            host.Run(data, "generate", "--users", Text(Math.Max(1, o.ProbeVisits / 2)), "--visits", Text(o.ProbeVisits), "--commits", "1", "--seed", "12",
                "--start", "2027-01-01T00:00:00Z");
            var probe = host.Run(data, "run", "--max-files-per-batch", "1000000");
            log.WriteLine(FormattableString.Invariant($"history: {o.ProbeVisits}-visit batch after {earlier} batches: {probe.Wall.TotalSeconds:F2}s"));
            results.Add(new JsonObject { ["earlier_batches"] = earlier, ["probe_s"] = Math.Round(probe.Wall.TotalSeconds, 3) });
        }

        report["history"] = results;
        if (results.Count == 2)
            report["history_ratio"] = Math.Round(results[1]!["probe_s"]!.GetValue<double>() / results[0]!["probe_s"]!.GetValue<double>(), 3);
    }

    /// <summary>Resident memory per pending user, and the time to the first committed batch after a SIGKILL.</summary>
    private static async Task MemoryAndRecoveryAsync(Options o, Host host, string dir, JsonObject report, TextWriter log)
    {
        var table = VisitsTable.In(dir);
        var start = Timestamps.ToMicros(new DateTime(2026, 6, 1, 0, 0, 0, DateTimeKind.Utc));
        const int Chunk = 1_000_000;
        for (long first = 1; first <= o.PendingUsers; first += Chunk)
        {
            var count = (int)Math.Min(Chunk, o.PendingUsers - first + 1);
            await table.AppendAsync([.. Enumerable.Range(0, count).Select(i => new Visit(first + i, start + first + i, "landing.html"))], "bench");
        }

        var baseline = host.Run(Path.Combine(dir, "..", "baseline"), "run").PeakRssBytes;
        var loaded = host.Run(dir, "run", "--max-files-per-batch", "1000000");
        var perUser = (loaded.PeakRssBytes - baseline) / (double)o.PendingUsers;
        log.WriteLine(FormattableString.Invariant($"memory: {o.PendingUsers} pending users: peak RSS {loaded.PeakRssBytes / 1048576.0:F0} MiB (empty run {baseline / 1048576.0:F0} MiB), {perUser:F0} bytes per pending user"));
        report["pending_users"] = o.PendingUsers;
        report["pending_users_peak_rss_bytes"] = loaded.PeakRssBytes;
        report["bytes_per_pending_user"] = Math.Round(perUser);

        // Recovery: a worker that has started is killed, then a run must recover every pending user to commit the next batch.
        using (var worker = host.Start(dir, "worker", "--poll-interval", "1h"))
        {
            while (await worker.StandardOutput.ReadLineAsync() is { } line && !line.StartsWith("worker: polling", StringComparison.Ordinal))
            {
            }

            worker.Kill();
            await worker.WaitForExitAsync();
        }

        await table.AppendAsync([new Visit(1, start + o.PendingUsers + 10, "return.html")], "bench");
        var recovery = host.Run(dir, "run", "--max-files-per-batch", "1000000");
        log.WriteLine(FormattableString.Invariant($"recovery: after SIGKILL with {o.PendingUsers} pending users, start to first batch committed: {recovery.Wall.TotalSeconds:F2}s"));
        report["recovery_s"] = Math.Round(recovery.Wall.TotalSeconds, 3);
    }

    /// <summary>
    /// Event-time cost against open sessions: <c>--pending-users</c> sessions are opened, then one batch touches 1% of
    /// them, the next one user, the next 10%, the last all of them; none closes any. The batch times are the batches'
    /// own (from their report lines), the process start being the same for each. Each batch is the first of a new
    /// process, which pays for reading the tables' logs and for compiling code a warm worker has compiled; the one-user
    /// batch is that fixed cost, and the marginal ratios are the 1% and 10% batches' costs above it against the full
    /// one's: a cost that follows the users touched gives about 1% and 10%.
    /// </summary>
    private static async Task TouchAsync(Options o, Host host, string dir, JsonObject report, TextWriter log)
    {
        var table = VisitsTable.In(dir);
        var start = Timestamps.ToMicros(new DateTime(2026, 6, 1, 0, 0, 0, DateTimeKind.Utc));
        var open = o.PendingUsers;
        const int Chunk = 1_000_000;
        async Task AppendAsync(long everyNth, long at)
        {
            for (long first = 1; first <= open; first += Chunk)
            {
                var users = Enumerable.Range(0, (int)Math.Min(Chunk, open - first + 1)).Select(i => first + i).Where(u => u % everyNth == 0).ToList();
                if (users.Count == 0)
                    continue;
                await table.AppendAsync([.. users.Select(u => new Visit(u, at + u, "page.html"))], "bench");
            }
        }

        await AppendAsync(1, start);
        host.Run(dir, ["run", "--max-files-per-batch", "1000000", .. o.SessionFlags]);
        // A minute later, then two: the watermark moves, but no session is a gap old.
        await AppendAsync(100, start + 60_000_000);
        var onePercent = BatchMillis(host.Run(dir, ["run", "--max-files-per-batch", "1000000", .. o.SessionFlags]));
        await AppendAsync(open, start + 90_000_000);
        var oneUser = BatchMillis(host.Run(dir, ["run", "--max-files-per-batch", "1000000", .. o.SessionFlags]));
        await AppendAsync(10, start + 105_000_000);
        var tenPercent = BatchMillis(host.Run(dir, ["run", "--max-files-per-batch", "1000000", .. o.SessionFlags]));
        await AppendAsync(1, start + 120_000_000);
        var all = BatchMillis(host.Run(dir, ["run", "--max-files-per-batch", "1000000", .. o.SessionFlags]));
        var ratio = onePercent.Millis / all.Millis;
        var marginal = (onePercent.Millis - oneUser.Millis) / (all.Millis - oneUser.Millis);
        var tenMarginal = (tenPercent.Millis - oneUser.Millis) / (all.Millis - oneUser.Millis);
        log.WriteLine(FormattableString.Invariant(
            $"touch: {open} open sessions; a batch touching 1% of them {onePercent.Millis:F0} ms (run {onePercent.Wall:F2}s), one user {oneUser.Millis:F0} ms, 10% {tenPercent.Millis:F0} ms, all of them {all.Millis:F0} ms (run {all.Wall:F2}s): {ratio:P1}, above the one-user batch {marginal:P1} (10%: {tenMarginal:P1})"));
        report["touch_open_sessions"] = open;
        report["touch_one_percent_ms"] = Math.Round(onePercent.Millis);
        report["touch_all_ms"] = Math.Round(all.Millis);
        report["touch_one_percent_run_s"] = Math.Round(onePercent.Wall, 3);
        report["touch_all_run_s"] = Math.Round(all.Wall, 3);
        report["touch_ratio"] = Math.Round(ratio, 4);
        report["touch_one_user_ms"] = Math.Round(oneUser.Millis);
        report["touch_marginal_ratio"] = Math.Round(marginal, 4);
        report["touch_ten_percent_ms"] = Math.Round(tenPercent.Millis);
        report["touch_ten_percent_marginal_ratio"] = Math.Round(tenMarginal, 4);
    }

    /// <summary>The batch's own time from its report line (<c>[123 ms]</c>), and the run's wall time.</summary>
    private static (double Millis, double Wall) BatchMillis(Host.Result run)
    {
        var match = System.Text.RegularExpressions.Regex.Match(run.Out, @"^batch \d+: .*\[(\d+) ms\]$", System.Text.RegularExpressions.RegexOptions.Multiline);
        if (!match.Success)
            throw new InvalidOperationException($"the run reported no batch: {run.Out.Trim()}");
        return (double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture), run.Wall.TotalSeconds);
    }

    private static void Walkthrough(Host host, string dir, JsonObject report, TextWriter log)
    {
        host.Run(dir, "generate-new-rows");
        var run = host.Run(dir, "run");
        log.WriteLine(FormattableString.Invariant($"walkthrough: run as a whole process: {run.Wall.TotalSeconds:F2}s"));
        report["walkthrough_run_s"] = Math.Round(run.Wall.TotalSeconds, 3);
    }

    private static readonly string[][] ReaderCommands =
    [
        ["read-session-tables"],
        ["read-session-tables", "--limit", "0"],
        ["read-session-tables", "--format", "json"],
        ["read-session-tables", "--table", "sessions", "--format", "csv"],
        ["read-tables"],
        ["read-tables", "--format", "csv"],
    ];

    /// <summary>
    /// The read commands over the issue's example: 1M visits (100K users) in 10 batches, about 840K session rows. Each
    /// command's wall time and peak resident memory; the target is under 300 MB for every one. In event-time mode the
    /// batches are event-time ones, so <c>PENDING SESSIONS</c> is the sessions open at the end.
    /// </summary>
    private static void Readers(Options o, Host host, string dir, JsonObject report, TextWriter log)
    {
        host.Run(dir, "generate", "--users", "100000", "--visits", "1000000", "--commits", "10");
        host.Run(dir, ["run", "--max-files-per-batch", "1", .. o.SessionFlags]);
        var readers = new JsonArray();
        foreach (var args in ReaderCommands)
        {
            var result = host.Run(dir, args);
            var lines = result.Out.Count(c => c == '\n');
            var command = string.Join(' ', args);
            log.WriteLine(FormattableString.Invariant($"readers: {command}: {result.Wall.TotalSeconds:F2}s, {result.PeakRssBytes / (1 << 20)} MiB, {lines} lines"));
            readers.Add(new JsonObject { ["command"] = command, ["s"] = Math.Round(result.Wall.TotalSeconds, 3), ["peak_rss_bytes"] = result.PeakRssBytes, ["lines"] = lines });
        }

        report["readers"] = readers;
    }

    private static string Render(Options o, JsonObject r)
    {
        var t = new System.Text.StringBuilder();
        t.AppendLine();
        t.AppendLine(FormattableString.Invariant($"Sessionization benchmark: {o.Users:N0} users, {o.Visits:N0} visits, {o.Runs} runs of {o.CommitsPerRun} commits, seed {o.Seed}"));
        t.AppendLine($"machine: {r["machine"]}");
        if (r["mode"] is { } mode)
            t.AppendLine($"sessions: {mode} (peer: the same event-time rule in DuckDB SQL; sessions compared)");
        if (r["ours_s"] is not null)
        {
            t.AppendLine();
            t.AppendLine("                     total s    visits/s   s per run");
            foreach (var (name, key) in new[] { ("ours", "ours"), ("floor (Parquet I/O)", "floor"), ("peer (DuckDB)", "peer") })
            {
                var total = r[$"{key}_s"]!.GetValue<double>();
                t.AppendLine(FormattableString.Invariant($"{name,-20} {total,8:F2} {o.Visits / total,11:N0} {total / o.Runs,11:F2}"));
            }

            t.AppendLine(FormattableString.Invariant($"ours/floor {r["ours_over_floor"]!.GetValue<double>():F3}x   ours/peer {r["ours_over_peer"]!.GetValue<double>():F3}x   outputs agree: {(r["outputs_agree"]!.GetValue<bool>() ? "yes" : "NO " + r["disagreement"]!.ToJsonString())}"));
            t.AppendLine(FormattableString.Invariant($"peak RSS (ours): {r["peak_rss_bytes"]!.GetValue<long>() / 1048576.0:F0} MiB   state on disk: {r["state_bytes"]!.GetValue<long>() / 1048576.0:F1} MiB"));
            if (r["worker_s"] is not null)
            {
                var worker = r["worker_s"]!.GetValue<double>();
                static string Times(JsonNode node) => string.Join(", ", node.AsArray().Select(t => t!.GetValue<double>().ToString("F2", CultureInfo.InvariantCulture)));
                t.AppendLine(FormattableString.Invariant(
                    $"worker (one process, all {o.Runs} batches): {worker:F2} s, {o.Visits / worker:N0} visits/s; peer {r["worker_peer_s"]!.GetValue<double>():F2} s; worker/peer {r["worker_over_peer"]!.GetValue<double>():F3}x; peak RSS {r["worker_peak_rss_bytes"]!.GetValue<long>() / 1048576.0:F0} MiB; outputs agree: {(r["worker_outputs_agree"]!.GetValue<bool>() ? "yes" : "NO")}"));
                t.AppendLine($"  medians of {r["worker_runs_s"]!.AsArray().Count}, alternating: worker {Times(r["worker_runs_s"]!)} s; peer {Times(r["worker_peer_runs_s"]!)} s");
            }

            t.AppendLine();
            t.AppendLine("run     visits   ours s  floor s   peer s   pending  completed");
            foreach (var run in r["per_run"]!.AsArray())
            {
                t.AppendLine(FormattableString.Invariant(
                    $"{run!["run"]!.GetValue<int>(),3} {run["visits"]!.GetValue<long>(),10} {run["ours_s"]!.GetValue<double>(),8:F2} {run["floor_s"]!.GetValue<double>(),8:F2} {run["peer_s"]!.GetValue<double>(),8:F2} {run["pending"]!.GetValue<long>(),9} {run["completed"]!.GetValue<long>(),10}"));
            }
        }

        t.AppendLine();
        if (r["history"] is JsonArray h)
        {
            foreach (var entry in h)
                t.AppendLine(FormattableString.Invariant($"history: {o.ProbeVisits:N0}-visit batch after {entry!["earlier_batches"]} earlier batches: {entry["probe_s"]!.GetValue<double>():F2} s"));
            if (r["history_ratio"] is { } ratio)
                t.AppendLine(FormattableString.Invariant($"history: growth {ratio.GetValue<double>():F2}x"));
        }

        if (r["bytes_per_pending_user"] is { } bytes)
            t.AppendLine(FormattableString.Invariant($"memory: {bytes.GetValue<double>():N0} bytes resident per pending user at {o.PendingUsers:N0} pending users"));
        if (r["recovery_s"] is { } recovery)
            t.AppendLine(FormattableString.Invariant($"recovery: {recovery.GetValue<double>():F2} s from process start to first committed batch after SIGKILL, {o.PendingUsers:N0} pending users"));
        if (r["touch_ratio"] is { } touch)
        {
            t.AppendLine(FormattableString.Invariant(
                $"touch: {r["touch_open_sessions"]!.GetValue<long>():N0} open sessions; batch touching 1%: {r["touch_one_percent_ms"]!.GetValue<double>():F0} ms, touching all: {r["touch_all_ms"]!.GetValue<double>():F0} ms ({touch.GetValue<double>():P1}); whole runs {r["touch_one_percent_run_s"]!.GetValue<double>():F2} s and {r["touch_all_run_s"]!.GetValue<double>():F2} s"));
            t.AppendLine(FormattableString.Invariant(
                $"touch: a batch touching one user (the fixed cost of a batch in a new process): {r["touch_one_user_ms"]!.GetValue<double>():F0} ms; above it, 1% costs {r["touch_marginal_ratio"]!.GetValue<double>():P1} of all, and 10% ({r["touch_ten_percent_ms"]!.GetValue<double>():F0} ms) {r["touch_ten_percent_marginal_ratio"]!.GetValue<double>():P1}"));
        }

        if (r["walkthrough_run_s"] is { } walk)
            t.AppendLine(FormattableString.Invariant($"walkthrough: run as a whole process {walk.GetValue<double>():F2} s"));
        if (r["readers"] is JsonArray readers)
        {
            t.AppendLine();
            t.AppendLine("readers over 1M visits in 10 batches                      s   peak MiB      lines");
            foreach (var reader in readers)
            {
                t.AppendLine(FormattableString.Invariant(
                    $"{reader!["command"]!.GetValue<string>(),-52} {reader["s"]!.GetValue<double>(),6:F2} {reader["peak_rss_bytes"]!.GetValue<long>() / (1 << 20),10} {reader["lines"]!.GetValue<int>(),10}"));
            }
        }
        return t.ToString();
    }

    private static long DirectorySize(string path) =>
        Directory.Exists(path) ? Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) : 0;

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}

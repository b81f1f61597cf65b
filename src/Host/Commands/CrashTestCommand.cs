using System.Diagnostics;
using System.Globalization;
using Sessionization.Domain;
using Sessionization.Host.Input;
using Sessionization.Host.Output;
using Sessionization.Host.Runtime;
using Sessionization.Persistence.Tables;

namespace Sessionization.Host.Commands;

/// <summary>
/// The exactly-once proof: runs a multi-batch workload once without interruption (the reference), then again
/// while killing <c>run</c> and <c>worker</c> processes with SIGKILL at random (seeded) moments until every
/// phase completes, and compares all three tables with the reference row for row.
/// </summary>
public static class CrashTestCommand
{
    /// <summary>
    /// A phase appends commits of visits from <see cref="Start"/> on (hour by hour), then processes them with its own
    /// files-per-batch bound; the last one ends the input, so its runs close every pending session in a batch of their own.
    /// </summary>
    private sealed record Phase(int Commits, int MaxFilesPerBatch, TimeSpan Start, bool EndOfInput = false)
    {
        public string[] RunArguments(string[] sessionFlags) => EndOfInput
            ? ["run", "--max-files-per-batch", Text(MaxFilesPerBatch), "--end-of-input", .. sessionFlags]
            : ["run", "--max-files-per-batch", Text(MaxFilesPerBatch), .. sessionFlags];
    }

    private static readonly Phase[] BatchPhases =
        [new(6, 2, TimeSpan.Zero), new(5, 1, TimeSpan.FromDays(1)), new(4, 3, TimeSpan.FromDays(2)), new(3, 1000, TimeSpan.FromDays(3), EndOfInput: true)];

    /// <summary>
    /// In event-time mode the second phase starts 90 minutes before the first one's last visit: with a 30-minute gap
    /// and 30 minutes of allowed lateness its first hour of visits is partly late (quarantined) and partly behind the
    /// watermark but not late (correcting written sessions, bridging some).
    /// </summary>
    private static readonly Phase[] EventTimePhases =
        [new(6, 2, TimeSpan.Zero), new(5, 1, TimeSpan.FromMinutes(270)), new(4, 3, TimeSpan.FromDays(1)), new(3, 1000, TimeSpan.FromDays(2), EndOfInput: true)];

    private static readonly string[] EventTimeFlags = ["--mode", "event-time", "--gap", "30m", "--allowed-lateness", "30m"];

    public static async Task<int> RunAsync(string? baseDirectory, int kills, int users, int visitsPerCommit, int seed, TextWriter output, SessionMode mode = SessionMode.Batches)
    {
        var eventTime = mode == SessionMode.EventTime;
        var phases = eventTime ? EventTimePhases : BatchPhases;
        string[] sessionFlags = eventTime ? EventTimeFlags : [];
        if (kills < 1 || users < 1 || visitsPerCommit < 1)
            throw new UserFacingException("crash-test needs --kills >= 1, --users >= 1 and --visits-per-commit >= 1");
        var root = Path.GetFullPath(baseDirectory ?? Path.Combine(Path.GetTempPath(), $"sessionization-crash-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}"));
        if (Directory.Exists(root) && Directory.EnumerateFileSystemEntries(root).Any())
            throw new UserFacingException($"crash-test needs a fresh directory, and {root} is not empty");
        var reference = Path.Combine(root, "reference");
        var crashed = Path.Combine(root, "crashed");
        var clock = Stopwatch.StartNew();
        var random = new Random(seed);
        output.WriteLine($"crash test in {root}: {phases.Length} phases, {phases.Sum(p => p.Commits)} commits of {visitsPerCommit} visits over {users} users, {kills} kills, seed {seed}{(eventTime ? $", {string.Join(' ', sessionFlags)}" : "")}");

        var referenceTimes = new List<TimeSpan>();
        for (var p = 0; p < phases.Length; p++)
        {
            Generate(reference, phases[p], p, users, visitsPerCommit, seed);
            var started = Stopwatch.StartNew();
            Child(reference, phases[p].RunArguments(sessionFlags)).Completed();
            referenceTimes.Add(started.Elapsed);
        }

        output.WriteLine($"reference: {string.Join(", ", referenceTimes.Select((t, i) => $"phase {i} {t.TotalSeconds:F1}s"))}");

        var killed = 0;
        int runsStarted = 0, workersStarted = 0;
        // On a terminal a bar counts the kills; piped, only the summary lines are printed.
        await LiveProgress.RunAsync(LiveProgress.Interactive(output) ? output : null, "crash-test: starting", kills, progress =>
        {
            for (var p = 0; p < phases.Length; p++)
            {
                Generate(crashed, phases[p], p, users, visitsPerCommit, seed);
                var target = (kills * (p + 1) / phases.Length) - (kills * p / phases.Length);
                var maxFiles = Text(phases[p].MaxFilesPerBatch);
                for (var k = 0; k < target;)
                {
                    var worker = random.Next(3) == 0;
                    var child = worker
                        ? Child(crashed, ["worker", "--poll-interval", "50ms", "--max-files-per-batch", maxFiles, .. sessionFlags])
                        : Child(crashed, phases[p].RunArguments(sessionFlags));
                    _ = worker ? workersStarted++ : runsStarted++;
                    // Anywhere from start-up to a little past the uninterrupted run's length.
                    var delay = TimeSpan.FromMilliseconds(random.NextDouble() * ((referenceTimes[p].TotalMilliseconds * 1.2) + 300));
                    if (child.Process.WaitForExit(delay))
                    {
                        child.Completed();
                        continue;
                    }

                    child.Process.Kill();
                    child.Process.WaitForExit();
                    killed++;
                    k++;
                    progress.Advance(1, string.Create(CultureInfo.InvariantCulture, $"crash-test: phase {p}, {killed} of {kills} kills ({runsStarted} runs, {workersStarted} workers started)"));
                }

                // However the kills fell, one uninterrupted run finishes the phase.
                Child(crashed, phases[p].RunArguments(sessionFlags)).Completed();
            }

            return Task.FromResult(killed);
        });

        var differences = await CompareAsync(reference, crashed, quarantineExpected: eventTime);
        var summary = string.Create(CultureInfo.InvariantCulture, $"{killed} kills ({runsStarted} runs and {workersStarted} workers started) in {clock.Elapsed.TotalSeconds:F1}s");
        if (differences.Count == 0)
        {
            var (visits, pending, completed, quarantined, corrections) = await CountsAsync(reference);
            var eventTimeCounts = eventTime ? $", {quarantined} late visits quarantined, {corrections} commits with corrections" : "";
            output.WriteLine($"crash test passed: {summary}; all {(eventTime ? "four" : "three")} tables identical to the reference ({visits} visits, {pending} pending-session rows, {completed} session rows{eventTimeCounts})");
            return 0;
        }

        output.WriteLine($"crash test FAILED: {summary}; tables differ from the reference:");
        foreach (var difference in differences)
            output.WriteLine("  " + difference);
        return 1;
    }

    private static void Generate(string directory, Phase phase, int index, int users, int visitsPerCommit, int seed)
    {
        var commits = phase.Commits;
        var start = SyntheticVisits.DefaultStart.Add(phase.Start);
        Child(directory, "generate", "--users", Text(users), "--visits", Text((long)visitsPerCommit * commits), "--commits", Text(commits),
            "--seed", Text(seed + index), "--start", start.ToString("O", CultureInfo.InvariantCulture)).Completed();
    }

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    private sealed record ChildProcess(Process Process, string Description, Task<string> Errors)
    {
        public void Completed()
        {
            Process.WaitForExit();
            if (Process.ExitCode != 0)
                throw new UserFacingException($"crash-test: '{Description}' failed with exit code {Process.ExitCode}: {Errors.Result.Trim()}");
        }
    }

    /// <summary>Starts this same program as a child process, the way a user or a supervisor would.</summary>
    private static ChildProcess Child(string baseDirectory, params string[] args)
    {
        var self = typeof(CrashTestCommand).Assembly.Location;
        var host = Environment.ProcessPath ?? "dotnet";
        var info = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
            info.ArgumentList.Add(self);
        foreach (var a in args)
            info.ArgumentList.Add(a);
        info.ArgumentList.Add("--base-dir");
        info.ArgumentList.Add(baseDirectory);
        var process = Process.Start(info)!;
        process.StandardOutput.ReadToEndAsync();
        return new ChildProcess(process, string.Join(' ', args), process.StandardError.ReadToEndAsync());
    }

    private static async Task<List<string>> CompareAsync(string reference, string crashed, bool quarantineExpected)
    {
        var differences = new List<string>();
        var expectedVisits = await VisitsTable.In(reference).ReadAllAsync();
        var actualVisits = await VisitsTable.In(crashed).ReadAllAsync();
        if (!expectedVisits.SequenceEqual(actualVisits))
            differences.Add($"visits_table: {actualVisits.Count} rows, expected {expectedVisits.Count}");
        foreach (var (name, open) in new[] { ("pending_sessions", (Func<string, SessionTable>)(b => SessionTable.Pending(b))), ("sessions", b => SessionTable.Completed(b)) })
        {
            var expected = await SortedRowsAsync(open(reference));
            var actual = await SortedRowsAsync(open(crashed));
            var missing = expected.Except(actual).ToList();
            var extra = actual.Except(expected).ToList();
            if (expected.Count != actual.Count || missing.Count > 0 || extra.Count > 0)
            {
                differences.Add($"{name}: {actual.Count} rows, expected {expected.Count}; {missing.Count} missing, {extra.Count} unexpected");
                differences.AddRange(missing.Take(3).Select(r => $"  missing:    {r}"));
                differences.AddRange(extra.Take(3).Select(r => $"  unexpected: {r}"));
            }
        }

        // The two directories' visits files have their own random names: rows are compared without them.
        var expectedQuarantine = (await QuarantineTable.In(reference).ReadAllAsync()).Select(q => (q with { SourceFile = "" }).ToString()).Order(StringComparer.Ordinal).ToList();
        var actualQuarantine = (await QuarantineTable.In(crashed).ReadAllAsync()).Select(q => (q with { SourceFile = "" }).ToString()).Order(StringComparer.Ordinal).ToList();
        if (!quarantineExpected && actualQuarantine.Count > 0)
            differences.Add("quarantine: rows were set aside, none expected");
        else if (!expectedQuarantine.SequenceEqual(actualQuarantine))
            differences.Add($"quarantine: {actualQuarantine.Count} rows, expected {expectedQuarantine.Count}");
        return differences;
    }

    private static async Task<List<SessionRecord>> SortedRowsAsync(SessionTable table) =>
        [.. (await table.ReadAllAsync()).OrderBy(r => r.BatchNumber).ThenBy(r => r.UserId)];

    private static async Task<(int Visits, int Pending, int Completed, int Quarantined, int Corrections)> CountsAsync(string baseDirectory)
    {
        var sessions = SessionTable.Completed(baseDirectory);
        var corrections = 0;
        for (var version = 0L; version <= (sessions.Delta.LatestVersion() ?? -1); version++)
        {
            if (sessions.Delta.ReadCommit(version).OfType<Persistence.Delta.RemoveFile>().Any(r => r.DataChange))
                corrections++;
        }

        return ((await VisitsTable.In(baseDirectory).ReadAllAsync()).Count, (await SessionTable.Pending(baseDirectory).ReadAllAsync()).Count, (await sessions.ReadAllAsync()).Count,
            (await QuarantineTable.In(baseDirectory).ReadAllAsync()).Count, corrections);
    }
}

using System.Globalization;
using System.Text;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Cli;

/// <summary>Event-time sessions through the real CLI: determinism over batchings, corrections, late visits, idle close, settings bound to the state.</summary>
public sealed class EventTimeProcessTests : IDisposable
{
    private static readonly string[] EventTime = ["--mode", "event-time"];
    private static readonly DateTime Start = new(2026, 3, 1, 8, 0, 0, DateTimeKind.Utc);
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>
    /// Commits of visits, each over the hour after the one before and shuffled within it, so no visit is late; the
    /// gaps are random (seconds to an hour), so sessions open and close across commits.
    /// </summary>
    private static List<string> Commits(int seed, int commits, int users, int visitsPerCommit)
    {
        var random = new Random(seed);
        var files = new List<string>();
        for (var c = 0; c < commits; c++)
        {
            var csv = new StringBuilder("user_id,visit_time,page\n");
            var rows = Enumerable.Range(0, visitsPerCommit)
                .Select(_ => (User: random.Next(1, users + 1), Time: Start.AddHours(c).AddSeconds(random.Next(0, 3600)), Page: $"page_{random.Next(1, 6)}"))
                .ToList();
            foreach (var (user, time, page) in rows)
                csv.Append(CultureInfo.InvariantCulture, $"{user},{time:yyyy-MM-ddTHH:mm:ssZ},{page}\n");
            files.Add(csv.ToString());
        }

        return files;
    }

    private string Append(string data, string csv)
    {
        var path = _temp.Combine($"commit-{Guid.NewGuid():N}.csv");
        File.WriteAllText(path, csv);
        SessionizeProcess.Ok(data, "append-visits", path);
        return path;
    }

    private static async Task<List<string>> Sessions(string data) =>
        [.. (await SessionTable.Completed(data).ReadAllAsync()).Select(Key).Order(StringComparer.Ordinal)];

    private static async Task<List<string>> UsersAndPages(string data) =>
        [.. (await Sessions(data)).Select(s => s.Split('|')[0] + "|" + s.Split('|')[4]).Order(StringComparer.Ordinal)];

    private static string Key(SessionRecord r) => $"{r.UserId}|{r.StartTimeMicros}|{r.EndTimeMicros}|{r.VisitCount}|{r.ConcatenatedPages}";

    [Fact]
    public void A_rewind_past_every_retained_checkpoint_reports_the_same_open_sessions_as_the_first_time()
    {
        var data = _temp.Combine("data");
        var retainTwo = new Dictionary<string, string> { ["SESSIONIZATION_CHECKPOINTS_RETAIN"] = "2" };
        foreach (var csv in Commits(seed: 12, commits: 5, users: 40, visitsPerCommit: 120))
            Append(data, csv);

        static string[] Open(string output) =>
            [.. output.Split('\n').Where(l => l.StartsWith("batch ", StringComparison.Ordinal)).Select(l => l[..l.IndexOf(':', StringComparison.Ordinal)] + " " + l[(l.LastIndexOf(';') + 1)..l.LastIndexOf('[')].Trim())];
        var first = SessionizeProcess.RunWith(data, null, retainTwo, ["run", "--max-files-per-batch", "1", .. EventTime]);
        Assert.True(first.ExitCode == 0, first.ToString());
        // Two checkpoints are kept, batches 3 and 4: a rewind to 3 takes back every one of them.
        var again = SessionizeProcess.RunWith(data, null, retainTwo, ["run", "--from-batch", "3", "--max-files-per-batch", "1", .. EventTime]);
        Assert.True(again.ExitCode == 0, again.ToString());

        Assert.Equal(Open(first.Out)[3..], Open(again.Out));
        Assert.All(Open(again.Out), line => Assert.DoesNotContain(" -", line, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Any_batching_of_the_same_visits_ends_with_the_same_sessions_as_computing_them_at_once()
    {
        var commits = Commits(seed: 7, commits: 6, users: 30, visitsPerCommit: 80);
        var oneFilePerBatch = _temp.Combine("one-file-per-batch");
        var oneRun = _temp.Combine("one-run");
        var runPerCommit = _temp.Combine("run-per-commit");
        // The run per commit writes its state log into the users table after every batch; the others keep it as a log,
        // which each later run reads back as it starts.
        var applyEveryBatch = _temp.Combine("apply-every-batch.conf");
        File.WriteAllText(applyEveryBatch, "sessionization.persistence.event-time-log-limit = 1B\n");
        foreach (var csv in commits)
        {
            Append(oneFilePerBatch, csv);
            Append(oneRun, csv);
            Append(runPerCommit, csv);
            SessionizeProcess.Ok(runPerCommit, ["run", .. EventTime, "--gap", "20m", "--config", applyEveryBatch]);
        }

        var perFile = SessionizeProcess.Ok(oneFilePerBatch, ["run", .. EventTime, "--gap", "20m", "--max-files-per-batch", "1"]);
        Assert.Contains("run: 6 batches committed", perFile.Out);
        SessionizeProcess.Ok(oneRun, ["run", .. EventTime, "--gap", "20m"]);
        foreach (var data in new[] { oneFilePerBatch, oneRun, runPerCommit })
        {
            var closing = SessionizeProcess.Ok(data, ["run", .. EventTime, "--gap", "20m", "--end-of-input"]);
            Assert.Contains("end of input, no files", closing.Out);
            Assert.Contains(", 0 open", closing.Out);
        }

        var direct = new EventTimeSessionPolicy(new EventTimeSettings(20 * Durations.MicrosPerMinute, null, 0, 0)).Direct(await VisitsTable.In(oneRun).ReadAllAsync());
        var expected = direct.Select(Key).Order(StringComparer.Ordinal).ToList();
        Assert.True(expected.Count > 100, $"the workload should make many sessions, made {expected.Count}");
        Assert.Equal(expected, await Sessions(oneFilePerBatch));
        Assert.Equal(expected, await Sessions(oneRun));
        Assert.Equal(expected, await Sessions(runPerCommit));
        // Nothing stays open, and a reader of pending_sessions sees that.
        Assert.Equal("user_id,concatenated_pages,batch_number\n", SessionizeProcess.Ok(oneRun, "read-session-tables", "--format", "csv", "--table", "pending").Out.ReplaceLineEndings("\n"));
    }

    [Fact]
    public async Task A_visit_behind_the_watermark_corrects_its_written_session_once_and_one_past_the_lateness_is_quarantined_as_late()
    {
        var data = _temp.Combine("data");
        string[] rules = [.. EventTime, "--allowed-lateness", "20m"];
        Append(data, "user_id,visit_time,page\n1,2026-01-01T10:00:00Z,a\n1,2026-01-01T10:10:00Z,b\n2,2026-01-01T10:05:00Z,x\n");
        Append(data, "user_id,visit_time,page\n1,2026-01-01T10:50:00Z,c\n2,2026-01-01T11:00:00Z,y\n");
        SessionizeProcess.Ok(data, ["run", .. rules]);
        Assert.Contains("1|a -> b", await UsersAndPages(data));

        // 10:20 is 40 minutes behind the watermark (11:00): within gap + lateness (50 minutes), so it extends a -> b.
        // 09:00 is two hours behind: late.
        Append(data, "user_id,visit_time,page\n1,2026-01-01T10:20:00Z,late-ok\n3,2026-01-01T09:00:00Z,too-late\n");
        var corrected = SessionizeProcess.Ok(data, ["run", .. rules]);
        Assert.Contains("1 session written (1 earlier row corrected)", corrected.Out);
        Assert.Contains("1 late", corrected.Out);

        var rows = await SessionTable.Completed(data).ReadAllAsync();
        var user1 = rows.Where(r => r.UserId == 1).Select(r => r.ConcatenatedPages).ToList();
        Assert.Equal(["a -> b -> late-ok"], user1);
        Assert.DoesNotContain(rows, r => r.UserId == 3);

        var quarantine = SessionizeProcess.Ok(data, "read-quarantine", "--format", "csv").Out;
        Assert.Contains(",3,2026-01-01 09:00:00,too-late,late (watermark 2026-01-01 11:00:00)", quarantine);

        // The open sessions are what a reader sees as pending; the end of input closes them.
        var pending = SessionizeProcess.Ok(data, "read-session-tables", "--format", "csv", "--table", "pending").Out.ReplaceLineEndings("\n");
        Assert.Equal("user_id,concatenated_pages,batch_number\n1,c,1\n2,y,0\n", pending);
        SessionizeProcess.Ok(data, ["run", .. rules, "--end-of-input"]);
        Assert.Equal(["1|a -> b -> late-ok", "1|c", "2|x", "2|y"], await UsersAndPages(data));
    }

    [Fact]
    public async Task A_worker_with_idle_close_closes_sessions_when_no_new_commit_comes()
    {
        var data = _temp.Combine("data");
        Append(data, "user_id,visit_time,page\n1,2026-01-01T10:00:00Z,a\n2,2026-01-01T10:05:00Z,b\n");
        using var worker = new RunningWorker(data, [.. EventTime, "--idle-close", "1s"]);

        Assert.Contains("2 open", worker.WaitFor("batch 0:"));
        var idle = worker.WaitFor("batch 1:");
        Assert.Contains("idle close, no files; watermark moved to", idle);
        Assert.Contains("2 sessions written, 0 open", idle);
        worker.Signal("TERM");
        worker.WaitFor("worker: stopping");
        Assert.True(worker.Process.WaitForExit(90_000));

        Assert.Equal(["1|a", "2|b"], await UsersAndPages(data));
        // The idle batch's watermark is in its plan and the state: a later run goes on from it.
        Assert.Contains("watermark:              " + DateTime.UtcNow.Year.ToString(CultureInfo.InvariantCulture), SessionizeProcess.Ok(data, "status").Out);
    }

    [Fact]
    public void The_event_time_demo_shows_the_gap_a_correction_a_late_visit_and_the_end_of_input()
    {
        var demo = SessionizeProcess.Ok(null, "demo", "--mode", "event-time", "--base-dir", _temp.Combine("demo")).Out;

        Assert.Contains("batch 0: 2 files (visits_table v0..v1), 5 visits, watermark 2026-01-01 11:00:00; 2 users, 2 sessions written, 2 open", demo);
        Assert.Contains("|1      |page_1.html -> page_2.html|2026-01-01 10:00:00|2026-01-01 10:10:00|2          |0           |", demo);
        Assert.Contains("2 sessions written (1 earlier row corrected), 1 open, 1 late", demo);
        Assert.Contains("|1      |page_1.html -> page_2.html -> page_6.html -> page_4.html|2026-01-01 10:00:00|2026-01-01 10:50:00|4          |1           |", demo);
        Assert.Contains("|page_7.html|late (watermark 2026-01-01 11:00:00)|", demo);
        Assert.Contains("batch 2: end of input, no files; 3 users, 1 session written, 0 open", demo);
        Assert.EndsWith("--mode event-time --gap 30m --max-duration off --watermark-delay 0s --allowed-lateness 0s", demo.TrimEnd());
    }

    [Fact]
    public void Other_session_settings_are_refused_naming_both_unless_the_run_reprocesses_from_batch_0()
    {
        var data = _temp.Combine("data");
        SessionizeProcess.Ok(data, "generate-new-rows");
        SessionizeProcess.Ok(data, ["run", .. EventTime, "--gap", "10m"]);

        var batches = SessionizeProcess.Run(data, "run");
        Assert.Equal(1, batches.ExitCode);
        Assert.Equal(
            "sessionize: the session settings differ from those the state was made with (recorded: event-time gap=10m max-duration=off watermark-delay=0s allowed-lateness=0s; given: batches); run with the recorded ones, or with --from-batch 0 to reprocess every visit under the new ones",
            batches.Err.Trim());
        var otherGap = SessionizeProcess.Run(data, ["run", .. EventTime]);
        Assert.Equal(1, otherGap.ExitCode);
        Assert.Contains("given: event-time gap=30m", otherGap.Err);

        var gapWithoutMode = SessionizeProcess.Run(data, "run", "--gap", "10m");
        Assert.Equal(1, gapWithoutMode.ExitCode);
        Assert.Equal("sessionize: --gap only applies with --mode event-time (the mode is batches)", gapWithoutMode.Err.Trim());

        var back = SessionizeProcess.Ok(data, "run", "--from-batch", "0");
        Assert.Contains("rewound to the checkpoint at the start of batch 0", back.Out);
        Assert.Contains("batch 0: 1 file (visits_table v0..v0), 4 visits, 3 users, 3 pending", back.Out);
        Assert.Contains("sessions:               batches", SessionizeProcess.Ok(data, "status").Out);
    }
}

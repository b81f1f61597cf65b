using System.Text.RegularExpressions;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Cli;

/// <summary>The seed's walkthrough with a new process for every command, checking what a user sees.</summary>
public sealed partial class WalkthroughProcessTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private string Data => _temp.Combine("data");

    [Fact]
    public void The_walkthrough_prints_the_seeds_tables_with_a_new_process_per_command()
    {
        var generated = SessionizeProcess.Ok(Data, "generate-new-rows");
        Assert.Equal("appended 4 visits to visits_table as version 0\n", generated.Out);

        var visits = SessionizeProcess.Ok(Data, "read-tables").Out;
        var lines = visits.Split('\n');
        Assert.Matches(@"^\|user_id\|visit_time {9,16}\|page {7}\|$", lines[1]);
        Assert.Equal(["1", "1", "2", "3"], lines[3..7].Select(l => l.Split('|')[1].Trim()));
        Assert.Equal(["page_1.html", "page_2.html", "page_3.html", "page_4.html"], lines[3..7].Select(l => l.Split('|')[3].Trim()));
        Assert.All(lines[3..7], l => Assert.Matches(@"^\|\d +\|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})? *\|page_\d\.html\|$", l));

        Assert.Matches(@"^batch 0: 1 file \(visits_table v0\.\.v0\), 4 visits, 3 users, 3 pending, 0 completed \[\d+ ms\]\nrun: 1 batch committed\n$", SessionizeProcess.Ok(Data, "run").Out);
        Assert.Equal(
            """
            PENDING SESSIONS
            +-------+--------------------------+------------+
            |user_id|concatenated_pages        |batch_number|
            +-------+--------------------------+------------+
            |1      |page_1.html -> page_2.html|0           |
            |2      |page_3.html               |0           |
            |3      |page_4.html               |0           |
            +-------+--------------------------+------------+

            SESSIONS
            +-------+------------------+
            |user_id|concatenated_pages|
            +-------+------------------+
            +-------+------------------+

            """,
            SessionizeProcess.Ok(Data, "read-session-tables").Out);

        SessionizeProcess.Ok(Data, "generate-new-rows");
        Assert.StartsWith("batch 1: 1 file (visits_table v1..v1), 4 visits, 3 users, 3 pending, 0 completed", SessionizeProcess.Ok(Data, "run").Out);
        SessionizeProcess.Ok(Data, "generate-closing-rows");
        Assert.StartsWith("batch 2: 1 file (visits_table v2..v2), 2 visits, 4 users, 2 pending, 2 completed", SessionizeProcess.Ok(Data, "run").Out);

        Assert.Equal(
            """
            PENDING SESSIONS
            +-------+--------------------------------------------------------+------------+
            |user_id|concatenated_pages                                      |batch_number|
            +-------+--------------------------------------------------------+------------+
            |1      |page_1.html -> page_2.html                              |0           |
            |2      |page_3.html                                             |0           |
            |3      |page_4.html                                             |0           |
            |1      |page_1.html -> page_2.html -> page_1.html -> page_2.html|1           |
            |2      |page_3.html -> page_3.html                              |1           |
            |3      |page_4.html -> page_4.html                              |1           |
            |3      |page_4.html -> page_4.html -> page_1.html               |2           |
            |4      |page_2.html                                             |2           |
            +-------+--------------------------------------------------------+------------+

            SESSIONS
            +-------+--------------------------------------------------------+
            |user_id|concatenated_pages                                      |
            +-------+--------------------------------------------------------+
            |1      |page_1.html -> page_2.html -> page_1.html -> page_2.html|
            |2      |page_3.html -> page_3.html                              |
            +-------+--------------------------------------------------------+

            """,
            SessionizeProcess.Ok(Data, "read-session-tables").Out);

        Assert.Equal("run: no new visits since the last checkpoint; no batch formed\n", SessionizeProcess.Ok(Data, "run").Out);

        var status = SessionizeProcess.Ok(Data, "status").Out;
        Assert.Contains("last committed batch:   2 (2 visits, 2 pending, 2 completed)", status);
        Assert.Contains("visits-table version:   consumed 2, available 2", status);
        Assert.Contains("pending sessions:       2", status);
        Assert.Contains("retained checkpoints:   3 (start of batches 0..2)", status);
        Assert.Matches(@"latest visit_time:      \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? UTC \(in the committed batches\)", status);
        Assert.Contains("batch in flight:        none", status);
    }

    [Fact]
    public void Wide_csv_and_json_formats_carry_times_and_counts()
    {
        SessionizeProcess.Ok(Data, "append-visits", Csv(_temp, "user_id,visit_time,page\n7,2026-02-15T13:23:19.045843Z,a\n7,2026-02-15 13:23:20,b\n"));
        SessionizeProcess.Ok(Data, "run");

        var wide = SessionizeProcess.Ok(Data, "read-session-tables", "--wide").Out;
        Assert.Contains("|user_id|concatenated_pages|batch_number|start_time                |end_time           |visit_count|", wide);
        Assert.Contains("|7      |a -> b            |0           |2026-02-15 13:23:19.045843|2026-02-15 13:23:20|2          |", wide);

        // CSV is one table per document, so any CSV reader loads it.
        Assert.Equal("user_id,concatenated_pages,batch_number\n7,a -> b,0\n", SessionizeProcess.Ok(Data, "read-session-tables", "--format", "csv", "--table", "pending").Out);
        Assert.Equal("user_id,concatenated_pages\n", SessionizeProcess.Ok(Data, "read-session-tables", "--format", "csv", "--table", "sessions").Out);
        Assert.Contains("--format csv prints one table: add --table pending or --table sessions", SessionizeProcess.Run(Data, "read-session-tables", "--format", "csv").Err);

        var json = System.Text.Json.Nodes.JsonNode.Parse(SessionizeProcess.Ok(Data, "read-session-tables", "--format", "json", "--wide").Out)!;
        Assert.Equal(7, (long)json["pending_sessions"]![0]!["user_id"]!);
        Assert.Equal("2026-02-15T13:23:19.045843Z", (string)json["pending_sessions"]![0]!["start_time"]!);
        Assert.Equal(2, (long)json["pending_sessions"]![0]!["visit_count"]!);
        Assert.Empty(json["sessions"]!.AsArray());
    }

    [Fact]
    public async Task End_of_input_processes_the_new_visits_then_closes_every_pending_session_in_a_batch_of_no_files()
    {
        SessionizeProcess.Ok(Data, "generate", "--users", "30", "--visits", "400", "--commits", "2", "--seed", "5");
        var reference = _temp.Combine("reference");
        SessionizeProcess.Ok(reference, "generate", "--users", "30", "--visits", "400", "--commits", "2", "--seed", "5");
        SessionizeProcess.Ok(reference, "run", "--max-files-per-batch", "1");

        var run = SessionizeProcess.Ok(Data, "run", "--max-files-per-batch", "1", "--end-of-input").Out.TrimEnd('\n').Split('\n');

        Assert.Equal(4, run.Length);
        Assert.StartsWith("batch 0: 1 file (visits_table v0..v0)", run[0]);
        Assert.StartsWith("batch 1: 1 file (visits_table v1..v1)", run[1]);
        var pendingBefore = await SessionTable.Pending(reference).ReadBatchAsync(1);
        Assert.NotEmpty(pendingBefore);
        Assert.StartsWith($"batch 2: end of input, no files; {pendingBefore.Count} pending sessions completed", run[2]);
        Assert.Equal("run: 3 batches committed", run[3]);

        // What the closing batch wrote is what was pending, now completed; nothing is pending after it.
        var closed = await SessionTable.Completed(Data).ReadBatchAsync(2);
        Assert.Equal(pendingBefore.Select(r => r with { BatchNumber = 2 }).OrderBy(r => r.UserId), closed.OrderBy(r => r.UserId));
        Assert.Empty(await SessionTable.Pending(Data).ReadBatchAsync(2));
        Assert.Equal("run: no new visits and no pending sessions; no batch formed\n", SessionizeProcess.Ok(Data, "run", "--end-of-input").Out);

        // New visits after the end of input start new sessions.
        SessionizeProcess.Ok(Data, "generate-new-rows");
        Assert.StartsWith("batch 3: 1 file (visits_table v2..v2), 4 visits, 3 users, 3 pending, 0 completed", SessionizeProcess.Ok(Data, "run").Out);
    }

    [Fact]
    public void Max_files_per_batch_splits_one_run_into_several_batches()
    {
        SessionizeProcess.Ok(Data, "generate", "--users", "20", "--visits", "300", "--commits", "5", "--seed", "3");

        var run = SessionizeProcess.Ok(Data, "run", "--max-files-per-batch", "2").Out.TrimEnd('\n').Split('\n');

        Assert.Equal(4, run.Length);
        Assert.StartsWith("batch 0: 2 files (visits_table v0..v1)", run[0]);
        Assert.StartsWith("batch 1: 2 files (visits_table v2..v3)", run[1]);
        Assert.StartsWith("batch 2: 1 file (visits_table v4..v4)", run[2]);
        Assert.Equal("run: 3 batches committed", run[3]);
        var visitCount = run[..3].Sum(l => int.Parse(VisitCount().Match(l).Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(300, visitCount);
    }

    [Fact]
    public void The_same_visits_give_byte_identical_session_data_files()
    {
        var csv = Csv(_temp, "user_id,visit_time,page\n1,2026-01-01T00:00:00Z,a\n2,2026-01-01T00:00:01Z,b\n1,2026-01-01T00:00:02Z,c\n");
        string[] dirs = [_temp.Combine("one"), _temp.Combine("two")];
        foreach (var dir in dirs)
        {
            SessionizeProcess.Ok(dir, "append-visits", csv);
            SessionizeProcess.Ok(dir, "run");
            SessionizeProcess.Ok(dir, "append-visits", Csv(_temp, "user_id,visit_time,page\n2,2026-01-01T00:01:00Z,d\n"));
            SessionizeProcess.Ok(dir, "run");
        }

        foreach (var table in new[] { "sessions", "pending_sessions" })
        {
            // The logs differ by their wall-clock commit times and table ids; the data files depend on the visits alone.
            var left = Directory.EnumerateFiles(Path.Combine(dirs[0], table), "*.parquet").Order().ToList();
            var right = Directory.EnumerateFiles(Path.Combine(dirs[1], table), "*.parquet").Order().ToList();
            Assert.NotEmpty(left);
            Assert.Equal(left.Select(f => Path.GetRelativePath(dirs[0], f)), right.Select(f => Path.GetRelativePath(dirs[1], f)));
            for (var i = 0; i < left.Count; i++)
                Assert.True(File.ReadAllBytes(left[i]).SequenceEqual(File.ReadAllBytes(right[i])), $"{left[i]} differs");
        }
    }

    [Fact]
    public void Generate_is_deterministic_for_a_seed()
    {
        string Visits(string dir, string seed)
        {
            SessionizeProcess.Ok(dir, "generate", "--users", "50", "--visits", "200", "--commits", "3", "--seed", seed);
            return SessionizeProcess.Ok(dir, "read-tables", "--format", "csv").Out;
        }

        var a = Visits(_temp.Combine("a"), "9");
        Assert.Equal(a, Visits(_temp.Combine("b"), "9"));
        Assert.NotEqual(a, Visits(_temp.Combine("c"), "10"));
        Assert.Equal(201, a.TrimEnd('\n').Split('\n').Length);
    }

    internal static string Csv(TempDirectory temp, string content)
    {
        var path = temp.Combine($"visits-{Guid.NewGuid():N}.csv");
        File.WriteAllText(path, content);
        return path;
    }

    [GeneratedRegex(@", (\d+) visits,")]
    private static partial Regex VisitCount();

    [Fact]
    public void The_demo_numbers_its_steps_as_the_seed_does_one_to_twelve_without_a_gap()
    {
        var demo = SessionizeProcess.Ok(null, "demo", "--base-dir", _temp.Combine("demo")).Out;

        var steps = demo.Split('\n').Select(l => StepNumber().Match(l)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)).ToList();
        Assert.Equal(Enumerable.Range(1, 12), steps);
        Assert.Contains("|3      |page_4.html -> page_4.html -> page_1.html               |2           |", demo);
    }

    [Fact]
    public void Readers_show_twenty_rows_by_default_as_spark_does_and_a_limit_applies_to_every_format()
    {
        SessionizeProcess.Ok(Data, "generate", "--users", "30", "--visits", "300", "--commits", "1", "--seed", "3");
        SessionizeProcess.Ok(Data, "run");

        var table = SessionizeProcess.Ok(Data, "read-session-tables", "--table", "pending").Out.Split('\n');
        Assert.Equal(20, table.Count(l => Regex.IsMatch(l, @"^\|\d")));
        Assert.Contains("only showing top 20 rows", table);
        Assert.Equal(30, SessionizeProcess.Ok(Data, "read-session-tables", "--table", "pending", "--limit", "0").Out.Split('\n').Count(l => Regex.IsMatch(l, @"^\|\d")));

        Assert.Equal(1 + 30, SessionizeProcess.Ok(Data, "read-session-tables", "--format", "csv", "--table", "pending").Out.TrimEnd('\n').Split('\n').Length);
        Assert.Equal(1 + 5, SessionizeProcess.Ok(Data, "read-session-tables", "--format", "csv", "--table", "pending", "--limit", "5").Out.TrimEnd('\n').Split('\n').Length);
        var json = System.Text.Json.Nodes.JsonNode.Parse(SessionizeProcess.Ok(Data, "read-session-tables", "--format", "json", "--limit", "3").Out)!;
        Assert.Equal(3, json["pending_sessions"]!.AsArray().Count);
        Assert.Equal(4, SessionizeProcess.Ok(Data, "read-tables", "--format", "csv", "--limit", "3").Out.TrimEnd('\n').Split('\n').Length);
        Assert.Contains("--limit must be 0 (all rows) or more", SessionizeProcess.Run(Data, "read-tables", "--limit", "-1").Err);
    }

    [Fact]
    public void Status_gives_one_json_document_with_the_lag_in_versions()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        var empty = System.Text.Json.Nodes.JsonNode.Parse(SessionizeProcess.Ok(Data, "status", "--format", "json").Out)!;
        Assert.Null(empty["last_committed_batch"]);
        Assert.Equal(1, (long)empty["visits_table_version"]!["behind"]!);

        SessionizeProcess.Ok(Data, "run");
        SessionizeProcess.Ok(Data, "generate-new-rows");
        var status = System.Text.Json.Nodes.JsonNode.Parse(SessionizeProcess.Ok(Data, "status", "--format", "json").Out)!;

        Assert.Equal(0, (long)status["last_committed_batch"]!["batch"]!);
        Assert.Equal(4, (long)status["last_committed_batch"]!["visits"]!);
        Assert.Equal([0L, 1L, 1L], new[] { "consumed", "available", "behind" }.Select(k => (long)status["visits_table_version"]![k]!));
        Assert.Equal(3, (long)status["pending_sessions"]!);
        Assert.Equal("batches", (string)status["sessions"]!);
        Assert.Null(status["batch_in_flight"]);
        Assert.True((bool)status["state_and_tables_agree"]!);
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", (string)status["latest_visit_time"]!);
        Assert.Equal([1L, 4L], new[] { "versions", "visits" }.Select(k => (long)status["lag"]![k]!));
        Assert.True((double)status["lag"]!["seconds"]! >= 0);
        Assert.Equal(0, (long)status["last_batch"]!["batch"]!);
        Assert.Equal(4, (long)status["last_batch"]!["visits"]!);
        Assert.True((double)status["last_batch"]!["duration_ms"]! > 0);
        Assert.False((bool)status["backoff"]!["backing_off"]!);
        Assert.Null(status["coordinator"]);
        var refused = SessionizeProcess.Run(Data, "status", "--format", "xml");
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("'xml'", refused.Err);
    }

    [GeneratedRegex(@"^(\d+)\. ")]
    private static partial Regex StepNumber();

    public void Dispose() => _temp.Dispose();
}

using Parquet;
using Parquet.Schema;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Cli;

/// <summary>Bad visits data and bad state files: the batch fails naming the file (and row), or with --bad-rows quarantine goes on.</summary>
public sealed class BadVisitsFilesProcessTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private string Data => _temp.Combine("data");

    private string VisitsDir => Path.Combine(Data, "visits_table");

    /// <summary>Appends a data file written by <paramref name="write"/> to the visits table as the next commit, as another writer could.</summary>
    private string AppendRawFile(Func<Stream, Task> write)
    {
        var name = $"part-00000-{Guid.NewGuid()}-c000.snappy.parquet";
        using (var stream = File.Create(Path.Combine(VisitsDir, name)))
            write(stream).GetAwaiter().GetResult();
        var table = new DeltaTable(VisitsDir);
        table.Commit(table.LatestVersion()!.Value + 1, [new AddFile(name, new Dictionary<string, string?>(), new FileInfo(Path.Combine(VisitsDir, name)).Length, 1, true, null, false)]);
        return name;
    }

    private static async Task WriteVisits(Stream stream, long?[] ids, DateTime?[] times, string?[] pages)
    {
        var id = new DataField<long>("user_id", true);
        var time = new DataField<DateTime>("visit_time", true);
        var page = new DataField<string>("page", true);
        await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(id, time, page), stream);
        using var group = writer.CreateRowGroup();
        await group.WriteAsync<long>(id, ids);
        await group.WriteAsync<DateTime>(time, times);
        await group.WriteAsync(page, pages!);
    }

    private static async Task WriteWrongSchema(Stream stream)
    {
        var id = new DataField<long>("user_id");
        var time = new DataField<DateTime>("visit_time");
        var page = new DataField<int>("page");
        await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(id, time, page), stream);
        using var group = writer.CreateRowGroup();
        await group.WriteAsync<long>(id, new long[] { 1 });
        await group.WriteAsync<DateTime>(time, new[] { DateTime.UtcNow });
        await group.WriteAsync<int>(page, new[] { 7 });
    }

    private static async Task WriteMissingColumn(Stream stream)
    {
        var id = new DataField<long>("user_id");
        var time = new DataField<DateTime>("visit_time");
        await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(id, time), stream);
        using var group = writer.CreateRowGroup();
        await group.WriteAsync<long>(id, new long[] { 1 });
        await group.WriteAsync<DateTime>(time, new[] { DateTime.UtcNow });
    }

    /// <summary>The seed's first rows, committed, with their one data file cut in half: the commit stands, the file does not read.</summary>
    private string SeedRowsWithTheirFileTruncated()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        var file = Directory.GetFiles(VisitsDir, "*.parquet").Single();
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
        return file;
    }

    private void AssertNothingCommitted()
    {
        // The run creates the empty output tables before its first batch; no batch may reach them.
        Assert.Null(SessionTable.Completed(Data).LastCommittedBatch());
        Assert.Null(SessionTable.Pending(Data).LastCommittedBatch());
        Assert.Empty(Directory.Exists(Path.Combine(Data, "sessions")) ? Directory.GetFiles(Path.Combine(Data, "sessions"), "*.parquet") : []);
    }

    private static void AssertFails(CliResult result, params string[] expected)
    {
        Assert.True(result.ExitCode == 1, result.ToString());
        var line = Assert.Single(result.Err.TrimEnd('\n').Split('\n'));
        foreach (var e in expected)
            Assert.Contains(e, line);
    }

    [Fact]
    public void Null_values_fail_the_batch_naming_file_and_row_or_are_quarantined()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        var t = new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc);
        var bad = AppendRawFile(s => WriteVisits(s, [5, null, 6, 7], [t, t, null, t], ["a", "b", "c", null]));

        AssertFails(SessionizeProcess.Run(Data, "run"), bad, "row 2 has a null user_id");
        AssertNothingCommitted();

        var run = SessionizeProcess.Ok(Data, "run", "--bad-rows", "quarantine").Out;
        Assert.StartsWith("batch 0: 2 files (visits_table v0..v1), 5 visits, 4 users, 4 pending, 0 completed, 3 quarantined", run);
        var quarantine = SessionizeProcess.Ok(Data, "read-quarantine", "--format", "csv").Out.TrimEnd('\n').Split('\n');
        Assert.Equal("batch_number,source_file,row,user_id,visit_time,page,reason", quarantine[0]);
        Assert.Equal($"0,{bad},2,,2026-03-01 00:00:00,b,null user_id", quarantine[1]);
        Assert.Equal($"0,{bad},3,6,,c,null visit_time", quarantine[2]);
        Assert.Equal($"0,{bad},4,7,2026-03-01 00:00:00,,null page", quarantine[3]);
        Assert.Contains("|5      |a                         |0           |", SessionizeProcess.Ok(Data, "read-session-tables").Out);
    }

    [Fact]
    public void A_missing_data_file_fails_the_batch_or_is_quarantined_whole()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        SessionizeProcess.Ok(Data, "generate-closing-rows");
        var commit = File.ReadAllText(Path.Combine(VisitsDir, "_delta_log", "00000000000000000001.json"));
        var file = Directory.GetFiles(VisitsDir, "*.parquet").Single(f => commit.Contains(Path.GetFileName(f), StringComparison.Ordinal));
        File.Delete(file);

        AssertFails(SessionizeProcess.Run(Data, "run"), Path.GetFileName(file), "data file is missing (committed in version 1)");
        AssertNothingCommitted();

        Assert.Contains("1 quarantined", SessionizeProcess.Ok(Data, "run", "--bad-rows", "quarantine").Out);
        Assert.Contains("data file is missing", SessionizeProcess.Ok(Data, "read-quarantine").Out);
    }

    [Fact]
    public void A_worker_backs_off_on_a_batch_that_keeps_failing_and_logs_each_failure()
    {
        var file = SeedRowsWithTheirFileTruncated();
        var config = _temp.Combine("retry.conf");
        File.WriteAllText(config, "sessionization.retry { initial = 200ms, max = 800ms }\n");

        using (var worker = new RunningWorker(Data, "--config", config))
        {
            // The worker polls every 100 ms, but tries the broken batch again only when each wait has passed.
            foreach (var (n, wait) in new[] { (1, "200ms"), (2, "400ms"), (3, "800ms"), (4, "800ms") })
            {
                var line = worker.WaitForWarning("batch 0 failed: visits_table/");
                Assert.Contains(Path.GetFileName(file), line);
                Assert.EndsWith($"(failure {n} in a row; trying again in {wait})", line);
            }

            worker.Signal("TERM");
            worker.WaitFor("worker: stopping");
            Assert.DoesNotContain(worker.Lines, l => l.Contains("An exception occured", StringComparison.Ordinal));
        }

        var log = File.ReadAllText(Path.Combine(Data, "state", "sessionize.log"));
        Assert.Contains("(failure 1 in a row; trying again in 200ms)", log);
        Assert.Matches(@"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WRN \[batch-coordinator\] batch 0 failed: visits_table/", log);
        AssertNothingCommitted();
    }

    [Fact]
    public void With_log_format_json_each_failure_is_one_json_object_with_its_fields_in_utc()
    {
        var file = SeedRowsWithTheirFileTruncated();
        var config = _temp.Combine("retry.conf");
        File.WriteAllText(config, "sessionization.retry { initial = 1h, max = 1h }\n");

        using (var worker = new RunningWorker(Data, "--config", config, "--log-format", "json"))
        {
            var line = worker.WaitFor("stderr: {");
            var warning = System.Text.Json.Nodes.JsonNode.Parse(line["stderr: ".Length..])!;
            Assert.Equal("Warning", (string)warning["@l"]!);
            Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", (string)warning["@t"]!);
            Assert.Equal(0, (long)warning["Batch"]!);
            Assert.Equal(1, (long)warning["FailuresInARow"]!);
            Assert.Equal("1h", (string)warning["RetryIn"]!);
            Assert.Contains(Path.GetFileName(file), (string)warning["Reason"]!);
            worker.Signal("TERM");
            worker.WaitFor("worker: stopping");
            Assert.True(worker.Process.WaitForExit(TimeSpan.FromSeconds(60)));
        }

        // The file has the worker's start and stop too, each one JSON object.
        var events = File.ReadAllLines(Path.Combine(Data, "state", "sessionize.log")).Select(l => System.Text.Json.Nodes.JsonNode.Parse(l)!).ToList();
        Assert.Contains(events, e => ((string)e["@m"]!).StartsWith("worker started: polling", StringComparison.Ordinal));
        Assert.Contains(events, e => (string?)e["InFlightBatch"] == "0");
    }

    [Fact]
    public void A_truncated_data_file_fails_the_batch_naming_it()
    {
        var file = SeedRowsWithTheirFileTruncated();

        AssertFails(SessionizeProcess.Run(Data, "run"), Path.GetFileName(file), "not a readable Parquet file");
        AssertNothingCommitted();
    }

    [Fact]
    public void A_data_file_without_a_column_or_with_the_wrong_type_fails_the_batch_naming_it()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        var missing = AppendRawFile(WriteMissingColumn);
        AssertFails(SessionizeProcess.Run(Data, "run"), missing, "has no column 'page'");

        Assert.Contains("1 quarantined", SessionizeProcess.Ok(Data, "run", "--bad-rows", "quarantine").Out);
        var wrong = AppendRawFile(WriteWrongSchema);
        AssertFails(SessionizeProcess.Run(Data, "run"), wrong, "column 'page' has type Int32, expected string");
    }

    [Fact]
    public void A_table_with_reader_features_we_do_not_read_is_refused_by_name()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        var table = new DeltaTable(VisitsDir);
        table.Commit(1, [new ProtocolAction(3, 7, ["deletionVectors", "columnMapping"], ["deletionVectors", "columnMapping"])]);

        AssertFails(SessionizeProcess.Run(Data, "run"), "unsupported Delta reader features: deletionVectors, columnMapping");
        AssertNothingCommitted();
    }

    [Fact]
    public void A_corrupt_state_database_is_refused_and_nothing_is_written()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        Directory.CreateDirectory(Path.Combine(Data, "state"));
        File.WriteAllText(Path.Combine(Data, "state", "journal.db"), new string('x', 4096));

        AssertFails(SessionizeProcess.Run(Data, "run"), "journal.db");
        AssertNothingCommitted();
    }

    [Fact]
    public void A_locked_state_database_fails_the_run_cleanly_and_a_later_run_succeeds()
    {
        var config = _temp.Combine("fast.conf");
        File.WriteAllText(config, "sessionization.persistence.busy-timeout = 1s\n");
        SessionizeProcess.Ok(Data, "generate-new-rows");
        SessionizeProcess.Ok(Data, "run", "--config", config);
        SessionizeProcess.Ok(Data, "generate-closing-rows");
        var before = SessionizeProcess.Ok(Data, "read-session-tables").Out;

        using (var holder = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(Data, "state", "journal.db")};Pooling=False"))
        {
            holder.Open();
            using var command = holder.CreateCommand();
            command.CommandText = "BEGIN EXCLUSIVE;";
            command.ExecuteNonQuery();

            AssertFails(SessionizeProcess.Run(Data, "run", "--config", config), "could not write BatchPlanned to its journal", "database is locked");
        }

        Assert.Equal(before, SessionizeProcess.Ok(Data, "read-session-tables").Out);
        Assert.StartsWith("batch 1:", SessionizeProcess.Ok(Data, "run", "--config", config).Out);
    }

    public void Dispose() => _temp.Dispose();
}

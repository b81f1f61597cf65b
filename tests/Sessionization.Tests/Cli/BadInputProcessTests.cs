using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Cli;

/// <summary>Bad input and misuse: one clear line on standard error, a non-zero exit, nothing committed.</summary>
public sealed class BadInputProcessTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private string Data => _temp.Combine("data");

    private static void AssertOneLineError(CliResult result, int exitCode, string expected)
    {
        Assert.True(result.ExitCode == exitCode, result.ToString());
        var lines = result.Err.TrimEnd('\n').Split('\n');
        Assert.True(lines.Length == 1, $"expected one line on stderr:\n{result}");
        Assert.StartsWith("sessionize: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", result.Out + result.Err);
    }

    [Fact]
    public void An_unknown_command_is_refused()
    {
        AssertOneLineError(SessionizeProcess.Run(Data, "sessionise"), 2, "sessionise");
    }

    [Fact]
    public void An_unknown_flag_is_refused()
    {
        AssertOneLineError(SessionizeProcess.Run(Data, "run", "--max-file-per-batch", "3"), 2, "--max-file-per-batch");
    }

    [Fact]
    public void A_flag_with_a_bad_value_is_refused()
    {
        AssertOneLineError(SessionizeProcess.Run(Data, "run", "--max-files-per-batch", "many"), 2, "many");
        AssertOneLineError(SessionizeProcess.Run(Data, "run", "--max-files-per-batch", "0"), 1, "max-files-per-batch must be at least 1");
        AssertOneLineError(SessionizeProcess.Run(Data, "worker", "--poll-interval", "soon"), 1, "--poll-interval 'soon'");
    }

    [Theory]
    [InlineData("read-tables")]
    [InlineData("read-session-tables")]
    [InlineData("status")]
    public void Read_commands_refuse_a_missing_base_directory(string command)
    {
        var missing = _temp.Combine("nowhere");
        AssertOneLineError(SessionizeProcess.Run(missing, command), 1, $"base directory {missing} does not exist");
        Assert.False(Directory.Exists(missing));
    }

    [Fact]
    public void Run_refuses_a_missing_base_directory_instead_of_creating_it()
    {
        var missing = _temp.Combine("dta");
        AssertOneLineError(SessionizeProcess.Run(missing, "run"), 1, $"base directory {missing} does not exist");
        Assert.False(Directory.Exists(missing));

        var file = _temp.Combine("data.csv");
        File.WriteAllText(file, "user_id,visit_time,page\n");
        AssertOneLineError(SessionizeProcess.Run(file, "run"), 1, $"base directory {file} is a file, not a directory");
    }

    [Fact]
    public void A_worker_waits_for_a_missing_base_directory_and_says_so()
    {
        using var worker = new RunningWorker(Data);
        Assert.Contains($"base directory {Data} does not exist; waiting for it", worker.WaitForWarning("worker: base directory"));
        Assert.False(Directory.Exists(Data));

        SessionizeProcess.Ok(Data, "generate-new-rows");
        worker.WaitFor("batch 0: 1 file");
        worker.Signal("TERM");
        Assert.Equal("worker: stopping; no batch in flight", worker.WaitFor("worker: stopping"));
    }

    [Fact]
    public void A_broken_configuration_file_is_refused_by_name()
    {
        var file = _temp.Combine("broken.conf");
        foreach (var broken in new[] { "sessionization.gap = ${undefined}\n", "[1, 2]\n", "include \"missing.conf\"" })
        {
            File.WriteAllText(file, broken);
            AssertOneLineError(SessionizeProcess.Run(Data, "run", "--config", file), 1, $"configuration file {file} is not valid HOCON");
        }
    }

    [Theory]
    [InlineData("SESSIONIZATION_MAX_FILES_PER_BATCH", "abc", "sessionization.max-files-per-batch 'abc' is not a whole number")]
    [InlineData("SESSIONIZATION_CHECKPOINTS_RETAIN", "lots", "sessionization.checkpoints.retain 'lots' is not a whole number")]
    [InlineData("SESSIONIZATION_POLL_INTERVAL", "soon", "sessionization.poll-interval 'soon' is not a duration")]
    [InlineData("SESSIONIZATION_LOG_FORMAT", "xml", "sessionization.log-format 'xml' is not text or json")]
    public void A_bad_environment_value_is_refused_naming_the_setting(string variable, string value, string expected)
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        AssertOneLineError(SessionizeProcess.RunWith(Data, null, new Dictionary<string, string> { [variable] = value }, "run"), 1, expected);
    }

    [Theory]
    [InlineData("--log-format xml worker", 2, "Argument 'xml' not recognized. Must be one of: 'text', 'json'")]
    [InlineData("run --bad-rows skip", 2, "Argument 'skip' not recognized. Must be one of: 'fail', 'quarantine'")]
    [InlineData("worker --metrics-port 0", 2, "--metrics-port must be a TCP port, 1-65535")]
    [InlineData("worker --metrics-port 70000", 2, "--metrics-port must be a TCP port, 1-65535")]
    [InlineData("vacuum --retain forever", 1, "--retain 'forever' is not a duration like 168h, 30d or 0s")]
    [InlineData("report", 2, "--out")]
    public void Operating_flags_out_of_their_range_are_refused_in_one_line(string command, int exitCode, string expected)
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        AssertOneLineError(SessionizeProcess.Run(Data, command.Split(' ')), exitCode, expected);
    }

    [Fact]
    public void A_malformed_connection_string_is_refused_without_repeating_it()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        var result = SessionizeProcess.Run(Data, "run", "--provider", "postgresql", "--connection-string", "Host=localhost;Password=s3cret;oops");
        AssertOneLineError(result, 1, "sessionization.persistence.connection-string is not a PostgreSQL connection string");
        Assert.DoesNotContain("s3cret", result.Err);
    }

    [Fact]
    public void An_unknown_format_names_the_choices()
    {
        AssertOneLineError(SessionizeProcess.Run(Data, "read-tables", "--format", "xml"), 2, "--format 'xml' is not table, csv or json");
        AssertOneLineError(SessionizeProcess.Run(Data, "read-tables", "--format", "1"), 2, "--format '1' is not table, csv or json");
    }

    [Fact]
    public void A_negative_batch_to_rewind_to_is_refused_as_one_that_does_not_exist()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        SessionizeProcess.Ok(Data, "run");
        AssertOneLineError(SessionizeProcess.Run(Data, "run", "--from-batch", "-1"), 1, "batch -1 does not exist: batches are numbered from 0");
    }

    [Fact]
    public void A_compressed_visits_file_is_refused_without_printing_its_bytes()
    {
        var file = _temp.Combine("visits.csv.gz");
        using (var gzip = new System.IO.Compression.GZipStream(File.Create(file), System.IO.Compression.CompressionLevel.Optimal))
            gzip.Write("user_id,visit_time,page\n1,2026-01-01T00:00:00Z,a\n"u8);

        var result = SessionizeProcess.Run(Data, "append-visits", file);

        AssertOneLineError(result, 1, $"{file}: not a CSV text file");
        Assert.DoesNotContain('\uFFFD', result.Err);
        Assert.False(Directory.Exists(Path.Combine(Data, "visits_table")));
    }

    [Theory]
    [InlineData("user_id,visit_time,page\n1,2026-01-01T00:00:00Z,a\nx,2026-01-01T00:00:00Z,b\n", "line 3, column user_id: 'x' is not a 64-bit integer")]
    [InlineData("user_id,visit_time,page\n1,2026-01-01T00:00:00Z,a\n1,yesterday,b\n", "line 3, column visit_time: 'yesterday' is not an ISO-8601 timestamp")]
    [InlineData("user_id,visit_time,page\n,2026-01-01T00:00:00Z,a\n", "line 2, column user_id: null user_id")]
    [InlineData("user_id,visit_time,page\n1,,a\n", "line 2, column visit_time: null visit_time")]
    [InlineData("user_id,visit_time,page\n1,2026-01-01T00:00:00Z,\n", "line 2, column page: null page")]
    [InlineData("user_id,visit_time,page\n1,2026-01-01T00:00:00Z\n", "line 2: expected 3 columns")]
    [InlineData("user,time,page\n1,2026-01-01T00:00:00Z,a\n", "line 1: header must be 'user_id,visit_time,page'")]
    public void A_bad_csv_row_is_named_and_nothing_is_committed(string csv, string expected)
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        var file = WalkthroughProcessTests.Csv(_temp, csv);

        AssertOneLineError(SessionizeProcess.Run(Data, "append-visits", file), 1, expected);

        var log = Directory.GetFiles(Path.Combine(Data, "visits_table", "_delta_log"), "*.json");
        Assert.Single(log);
        Assert.Single(Directory.GetFiles(Path.Combine(Data, "visits_table"), "*.parquet"));
    }

    [Fact]
    public void Visits_can_come_from_standard_input_with_quoted_pages()
    {
        var result = SessionizeProcess.RunWithInput(Data, "user_id,visit_time,page\n5,2026-01-01T00:00:00Z,\"a,b \"\"c\"\"\"\n", "append-visits", "-");
        Assert.True(result.ExitCode == 0, result.ToString());

        Assert.Contains("|5      |2026-01-01 00:00:00|a,b \"c\"|", SessionizeProcess.Ok(Data, "read-tables").Out);
    }

    [Fact]
    public void A_missing_csv_file_is_named()
    {
        AssertOneLineError(SessionizeProcess.Run(Data, "append-visits", _temp.Combine("absent.csv")), 1, "absent.csv: no such file");
    }

    [Fact]
    public void A_corrupt_visits_file_fails_the_batch_naming_it_and_commits_nothing()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        var data = Directory.GetFiles(Path.Combine(Data, "visits_table"), "*.parquet").Single();
        File.WriteAllText(data, "this is not parquet");

        var result = SessionizeProcess.Run(Data, "run");

        Assert.Equal(1, result.ExitCode);
        Assert.Contains(Path.GetFileName(data), result.Err);
        Assert.Contains("not a readable Parquet file", result.Err);
        Assert.Null(SessionTable.Completed(Data).LastCommittedBatch());
        Assert.Null(SessionTable.Pending(Data).LastCommittedBatch());
    }

    [Fact]
    public void A_torn_commit_in_the_visits_log_fails_the_run_naming_it()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        File.WriteAllText(Path.Combine(Data, "visits_table", "_delta_log", "00000000000000000001.json"), "{\"add\":{\"pa");

        var result = SessionizeProcess.Run(Data, "run");

        AssertOneLineError(result, 1, "00000000000000000001.json: line 1 is not a valid Delta action");
        Assert.False(Directory.Exists(Path.Combine(Data, "sessions")));
    }

    public void Dispose() => _temp.Dispose();
}

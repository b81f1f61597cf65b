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

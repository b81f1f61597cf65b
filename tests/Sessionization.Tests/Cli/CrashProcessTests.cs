namespace Sessionization.Tests.Cli;

/// <summary>The short form of the crash test: SIGKILL at random moments, then every table must equal the uninterrupted reference.</summary>
public sealed class CrashProcessTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    [Fact]
    public void Killing_runs_and_workers_at_random_moments_leaves_the_tables_exactly_as_an_uninterrupted_run_would()
    {
        var result = SessionizeProcess.Run(
            null, "crash-test", "--base-dir", _temp.Combine("crash"), "--kills", "10", "--users", "2000", "--visits-per-commit", "800", "--seed", "7");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Matches(@"crash test passed: 1\d kills \(\d+ runs and \d+ workers started\)", result.Out);
        Assert.Contains("all three tables identical to the reference (14400 visits,", result.Out);
    }

    [Fact]
    public void In_event_time_mode_too_with_late_visits_and_corrections()
    {
        var result = SessionizeProcess.Run(
            null, "crash-test", "--mode", "event-time", "--base-dir", _temp.Combine("crash"), "--kills", "8", "--users", "2000", "--visits-per-commit", "800", "--seed", "3");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("all four tables identical to the reference (14400 visits,", result.Out);
        // The workload has both: visits too late to count, and visits that corrected written sessions.
        Assert.Matches(@", [1-9]\d* late visits quarantined, [1-9]\d* commits with corrections\)", result.Out);
    }

    [Fact]
    public void With_the_coordinator_compacting_its_tables_every_two_batches()
    {
        var upkeep = new Dictionary<string, string> { ["SESSIONIZATION_CHECKPOINTS_RETAIN"] = "3", ["SESSIONIZATION_TABLES_OPTIMIZE_EVERY"] = "2" };
        var dir = _temp.Combine("crash");
        var result = SessionizeProcess.RunWith(
            null, null, upkeep, "crash-test", "--mode", "event-time", "--base-dir", dir, "--kills", "8", "--users", "2000", "--visits-per-commit", "800", "--seed", "3");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("all four tables identical to the reference (14400 visits,", result.Out);
        foreach (var table in new[] { "pending_sessions", "sessions" })
        {
            var optimized = Directory.EnumerateFiles(Path.Combine(dir, "crashed", table, "_delta_log"), "*.json")
                .Count(f => File.ReadAllText(f).Contains("\"operation\":\"OPTIMIZE\"", StringComparison.Ordinal));
            Assert.True(optimized > 0, $"the crashed {table} was never compacted");
        }
    }

    public void Dispose() => _temp.Dispose();
}

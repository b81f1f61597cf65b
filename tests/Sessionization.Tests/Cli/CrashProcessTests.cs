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

    public void Dispose() => _temp.Dispose();
}

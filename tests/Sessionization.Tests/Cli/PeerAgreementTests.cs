namespace Sessionization.Tests.Cli;

/// <summary>
/// A differential test: on a workload where sessions open, close and return across runs, ours (the real
/// <c>sessionize run</c> per slice) and the DuckDB peer (the same semantics in SQL) write the same rows.
/// </summary>
public sealed class PeerAgreementTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    [Fact]
    public async Task Ours_and_the_duckdb_peer_write_the_same_pending_and_completed_sessions()
    {
        using var output = new StringWriter();
        using var progress = new StringWriter();
        var exit = await Sessionization.Bench.Program.RunAsync(
            [
                "--users", "400", "--visits", "6000", "--runs", "4", "--commits-per-run", "3", "--seed", "3",
                "--sections", "main", "--json", "--base-dir", _temp.Combine("bench"), "--host", SessionizeProcess.HostDll,
            ],
            output,
            progress);

        var report = System.Text.Json.Nodes.JsonNode.Parse(output.ToString())!;
        Assert.True(exit == 0, output + "\n" + progress);
        Assert.True(report["outputs_agree"]!.GetValue<bool>(), report.ToJsonString());
        var runs = report["per_run"]!.AsArray();
        Assert.Equal(4, runs.Count);
        Assert.All(runs.Skip(1), r => Assert.True(r!["completed"]!.GetValue<long>() > 0, "sessions must close in every later run"));
    }

    [Fact]
    public async Task The_worker_section_times_the_worker_and_its_own_peer_alternately_and_compares_their_medians()
    {
        using var output = new StringWriter();
        using var progress = new StringWriter();
        var exit = await Sessionization.Bench.Program.RunAsync(
            [
                "--users", "300", "--visits", "4000", "--runs", "3", "--commits-per-run", "2", "--seed", "5", "--mode", "event-time",
                "--sections", "main,worker", "--worker-repeats", "2", "--json", "--base-dir", _temp.Combine("bench"), "--host", SessionizeProcess.HostDll,
            ],
            output,
            progress);

        Assert.True(exit == 0, output + "\n" + progress);
        var report = System.Text.Json.Nodes.JsonNode.Parse(output.ToString())!;
        Assert.True(report["worker_outputs_agree"]!.GetValue<bool>(), report.ToJsonString());
        var workers = report["worker_runs_s"]!.AsArray().Select(t => t!.GetValue<double>()).ToList();
        var peers = report["worker_peer_runs_s"]!.AsArray().Select(t => t!.GetValue<double>()).ToList();
        Assert.Equal(2, workers.Count);
        Assert.Equal(2, peers.Count);
        Assert.All(workers.Concat(peers), t => Assert.True(t > 0));
        // Of two, the median is their mean (the times are reported rounded to milliseconds).
        Assert.InRange(report["worker_s"]!.GetValue<double>() - ((workers[0] + workers[1]) / 2), -0.002, 0.002);
        Assert.InRange(report["worker_peer_s"]!.GetValue<double>() - ((peers[0] + peers[1]) / 2), -0.002, 0.002);
        // Each repeat has a directory of its own, where the second worker wrote its tables from nothing.
        Assert.True(Directory.Exists(Path.Combine(_temp.Combine("bench"), "main", "worker", "2", "sessions")));
        Assert.Equal(2, progress.ToString().Split('\n').Count(l => l.StartsWith("worker ", StringComparison.Ordinal) && l.Contains("outputs agree: yes", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task The_touch_section_times_a_batch_touching_one_user_1_percent_10_percent_and_all_of_the_open_sessions()
    {
        using var output = new StringWriter();
        using var progress = new StringWriter();
        var exit = await Sessionization.Bench.Program.RunAsync(
            [
                "--mode", "event-time", "--sections", "touch", "--pending-users", "3000", "--json", "--base-dir", _temp.Combine("bench"),
                "--host", SessionizeProcess.HostDll,
            ],
            output,
            progress);

        Assert.True(exit == 0, output + "\n" + progress);
        var report = System.Text.Json.Nodes.JsonNode.Parse(output.ToString())!;
        Assert.Equal(3000, report["touch_open_sessions"]!.GetValue<long>());
        foreach (var key in new[] { "touch_one_percent_ms", "touch_one_user_ms", "touch_ten_percent_ms", "touch_all_ms" })
            Assert.True(report[key]!.GetValue<double>() >= 0, key);
        // What the ratios mean rests on this: no batch closed a session, so each one's work is its touched users.
        var touched = Path.Combine(_temp.Combine("bench"), "touch");
        Assert.Empty(await Sessionization.Persistence.Tables.SessionTable.Completed(touched).ReadAllAsync());
        Assert.Equal(3000, (await Sessionization.Persistence.Tables.SessionTable.Pending(touched).ReadBatchAsync(4)).Count);
    }

    public void Dispose() => _temp.Dispose();
}

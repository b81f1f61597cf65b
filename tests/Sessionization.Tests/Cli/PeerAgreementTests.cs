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

    public void Dispose() => _temp.Dispose();
}

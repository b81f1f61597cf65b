using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Sessionization.Tests.Cli;

/// <summary>A worker's <c>--metrics-port</c>: Prometheus metrics, liveness and readiness, scraped from a real worker process.</summary>
public sealed partial class ServiceEndpointProcessTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    private string Data => _temp.Combine("data");

    [Fact]
    public async Task A_worker_is_alive_and_not_ready_while_its_base_directory_is_missing_then_ready_with_its_batches_in_the_metrics()
    {
        var port = FreePort();
        using var worker = new RunningWorker(Data, "--metrics-port", Port(port));
        worker.WaitFor("worker: metrics on");
        worker.WaitForWarning("worker: base directory");

        var (alive, _) = await GetAsync(port, "/healthz");
        Assert.Equal(HttpStatusCode.OK, alive);
        var (notReady, why) = await GetAsync(port, "/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady);
        Assert.Contains($"base directory {Data} does not exist", why);

        Directory.CreateDirectory(Data);
        SessionizeProcess.Ok(Data, "generate-new-rows");
        worker.WaitFor("batch 0:");

        var (ready, body) = await GetAsync(port, "/readyz");
        Assert.True(ready == HttpStatusCode.OK, body);
        Assert.Contains("\"batch-coordinator\":{\"status\":\"Healthy\",\"description\":\"polling\"}", body);
        Assert.Contains("akka.actorsystem", (await GetAsync(port, "/healthz")).Body);

        var metrics = await ScrapeAsync(port);
        Assert.Equal(1, metrics["sessionization_batches_committed_total"]);
        Assert.Equal(4, metrics["sessionization_visits_processed_total"]);
        Assert.Equal(3, metrics["sessionization_sessions_open"]);
        Assert.Equal(1, metrics["sessionization_batch_duration_seconds_count"]);
        Assert.Equal(3, metrics["sessionization_batch_users_sum"]);
        Assert.True(metrics["sessionization_state_size_bytes"] > 0);
        Assert.Equal(1, metrics["sessionization_store_flush_duration_seconds_count"]);

        SessionizeProcess.Ok(Data, "generate-closing-rows");
        worker.WaitFor("batch 1:");
        metrics = await ScrapeAsync(port);
        Assert.Equal(2, metrics["sessionization_batches_committed_total"]);
        Assert.Equal(2, metrics["sessionization_sessions_open"]);
        Assert.False(metrics.ContainsKey("sessionization_batches_failed_total"));

        worker.Signal("TERM");
        worker.WaitFor("worker: stopping");
        Assert.True(worker.Process.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Equal(0, worker.Process.ExitCode);
    }

    [Fact]
    public async Task A_worker_backing_off_is_not_ready_and_its_metrics_show_the_failures_and_the_backlog()
    {
        Directory.CreateDirectory(Data);
        SessionizeProcess.Ok(Data, "generate-new-rows");
        SessionizeProcess.Ok(Data, "generate-closing-rows");
        var file = new DirectoryInfo(Path.Combine(Data, "visits_table")).GetFiles("*.parquet").OrderBy(f => f.LastWriteTimeUtc).First().FullName;
        File.WriteAllBytes(file, File.ReadAllBytes(file)[..10]);
        var config = _temp.Combine("retry.conf");
        // A backoff long enough that the worker is still waiting when it is asked.
        File.WriteAllText(config, "sessionization.retry { initial = 1h, max = 1h }\n");

        var port = FreePort();
        using var worker = new RunningWorker(Data, "--config", config, "--metrics-port", Port(port));
        worker.WaitForWarning("batch 0 failed: visits_table/");

        var (status, body) = await GetAsync(port, "/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        Assert.Contains("backing off after 1 failure in a row; next attempt at", body);
        Assert.Contains(Path.GetFileName(file), body);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(port, "/healthz")).Status);

        var metrics = await ScrapeAsync(port);
        Assert.Equal(1, metrics["sessionization_batches_failed_total"]);
        Assert.Equal(1, metrics["sessionization_backoff_failures"]);
        Assert.InRange(metrics["sessionization_backoff_seconds"], 1, 3600);
        Assert.Equal(2, metrics["sessionization_lag_versions"]);
        Assert.Equal(6, metrics["sessionization_lag_visits"]);
        Assert.True(metrics["sessionization_lag_seconds"] >= 0);
        Assert.False(metrics.ContainsKey("sessionization_batches_committed_total"));

        // status, from another process, sees the same: the worker, its backoff and the backlog.
        var json = System.Text.Json.Nodes.JsonNode.Parse(SessionizeProcess.Ok(Data, "status", "--format", "json").Out)!;
        Assert.Contains($"pid {worker.Process.Id} (worker)", (string)json["coordinator"]!);
        Assert.True((bool)json["backoff"]!["backing_off"]!);
        Assert.Equal(1, (int)json["backoff"]!["failures_in_a_row"]!);
        Assert.Contains(Path.GetFileName(file), (string)json["backoff"]!["last_failure"]!);
        Assert.Equal([2L, 6L], new[] { "versions", "visits" }.Select(k => (long)json["lag"]![k]!));
        Assert.Null(json["last_batch"]);

        worker.Signal("TERM");
        worker.WaitFor("worker: stopping");
        Assert.True(worker.Process.WaitForExit(TimeSpan.FromSeconds(60)));
        var text = SessionizeProcess.Ok(Data, "status").Out;
        Assert.Contains("coordinator:            none running", text);
        Assert.Contains("backoff:                none running; the last attempt failed: visits_table/", text);
        Assert.Contains("lag:                    2 versions, 6 visits; oldest unprocessed commit ", text);
    }

    [Fact]
    public void A_port_in_use_is_refused_in_one_line()
    {
        using var taken = new TcpListener(IPAddress.Any, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        Directory.CreateDirectory(Data);

        var result = SessionizeProcess.Run(Data, "worker", "--metrics-port", Port(port));
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith($"sessionize: --metrics-port {port} cannot be served: ", Assert.Single(result.Err.TrimEnd('\n').Split('\n')));
    }

    private static string Port(int port) => port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task A_worker_that_compacts_its_tables_counts_the_files_it_joined()
    {
        var config = _temp.Combine("upkeep.conf");
        File.WriteAllText(config, "sessionization { checkpoints.retain = 2, tables.optimize-every = 4 }\n");
        SessionizeProcess.Ok(Data, "generate", "--users", "30", "--visits", "800", "--commits", "8", "--seed", "4");
        var port = FreePort();
        using var worker = new RunningWorker(Data, "--max-files-per-batch", "1", "--config", config, "--metrics-port", Port(port));

        var joined = new[] { worker.WaitFor("compacted the files of batches 0..1:"), worker.WaitFor("compacted the files of batches 0..5:") }
            .Select(line => JoinedFiles().Match(line))
            .Select(m => m.Success ? int.Parse(m.Groups["files"].Value, System.Globalization.CultureInfo.InvariantCulture) : 0)
            .Sum();

        var (_, text) = await GetAsync(port, "/metrics");
        var counted = text.Split('\n').Single(l => l.StartsWith("sessionization_files_compacted_total{", StringComparison.Ordinal) && l.Contains("table=\"pending_sessions\"", StringComparison.Ordinal));
        Assert.True(joined >= 2);
        Assert.Equal(joined, double.Parse(counted[(counted.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"pending_sessions: joined (?<files>\d+) files")]
    private static partial Regex JoinedFiles();

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private async Task<(HttpStatusCode Status, string Body)> GetAsync(int port, string path)
    {
        using var response = await _http.GetAsync(new Uri($"http://127.0.0.1:{port}{path}"));
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>The scrape's samples by name, labels dropped: each instrument here has one series (one store, no other tags).</summary>
    private async Task<Dictionary<string, double>> ScrapeAsync(int port)
    {
        var (status, text) = await GetAsync(port, "/metrics");
        Assert.Equal(HttpStatusCode.OK, status);
        return text.Split('\n')
            .Select(l => Sample().Match(l))
            .Where(m => m.Success && !m.Groups["name"].Value.EndsWith("_bucket", StringComparison.Ordinal))
            .ToDictionary(m => m.Groups["name"].Value, m => double.Parse(m.Groups["value"].Value, System.Globalization.CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"^(?<name>sessionization_[a-z_]+)(\{[^}]*\})? (?<value>\S+)")]
    private static partial Regex Sample();

    public void Dispose()
    {
        _http.Dispose();
        _temp.Dispose();
    }
}

using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Sessionization.Persistence;

namespace Sessionization.Host.Runtime;

/// <summary>
/// A worker's HTTP port: <c>/metrics</c> (Prometheus text, from the OpenTelemetry meter), <c>/healthz</c> (alive) and
/// <c>/readyz</c> (working). It starts before the actor system, so a worker waiting for its base directory already
/// answers "alive, not ready" with the reason; once the runtime is attached, both answers come from the health checks
/// registered with Akka.Hosting in the runtime's host.
/// </summary>
public sealed class ServiceEndpoint : IAsyncDisposable
{
    public const string LivenessTag = "live";
    public const string ReadinessTag = "ready";

    private readonly WebApplication _app;
    private volatile HealthCheckService? _checks;
    private volatile string _notReady = "starting";

    private ServiceEndpoint(WebApplication app) => _app = app;

    public int Port { get; private init; }

    /// <summary>Serves on every interface at <paramref name="port"/>, as a scrape target usually is; a port in use is refused in one line.</summary>
    public static async Task<ServiceEndpoint> StartAsync(int port, CancellationToken cancellationToken)
    {
        // The content root is the program's own directory, so no appsettings file in the working directory changes it.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Any, port));
        // No cached scrape responses (the exporter keeps one for 300 ms by default): a scrape right after a batch is
        // reported must count it, and a scraper asking every few seconds gains nothing from the cache.
        builder.Services.AddOpenTelemetry().ConfigureResource(r => r.AddService("sessionize"))
            .WithMetrics(m => m.AddMeter(SessionizationMetrics.MeterName).AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));
        var app = builder.Build();
        var endpoint = new ServiceEndpoint(app) { Port = port };
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapGet("/healthz", endpoint.AliveAsync);
        app.MapGet("/readyz", endpoint.ReadyAsync);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (IOException e)
        {
            await app.DisposeAsync();
            throw new UserFacingException($"--metrics-port {port} cannot be served: {e.Message}");
        }

        return endpoint;
    }

    /// <summary>Not ready, for <paramref name="reason"/>, until a runtime is attached.</summary>
    public void NotReady(string reason)
    {
        _checks = null;
        _notReady = reason;
    }

    /// <summary>From now on the runtime's health checks answer.</summary>
    public void Attach(SessionizerRuntime runtime) => _checks = runtime.Services.GetRequiredService<HealthCheckService>();

    private Task AliveAsync(HttpContext http) => AnswerAsync(http, LivenessTag, "alive", notAttached: true);

    private Task ReadyAsync(HttpContext http) => AnswerAsync(http, ReadinessTag, "ready", notAttached: false);

    private async Task AnswerAsync(HttpContext http, string tag, string what, bool notAttached)
    {
        var body = new JsonObject();
        bool healthy;
        if (_checks is { } checks)
        {
            var report = await checks.CheckHealthAsync(r => r.Tags.Contains(tag), http.RequestAborted);
            healthy = report.Status == HealthStatus.Healthy;
            var entries = new JsonObject();
            foreach (var (name, entry) in report.Entries)
                entries[name] = new JsonObject { ["status"] = entry.Status.ToString(), ["description"] = entry.Description };
            body["checks"] = entries;
        }
        else
        {
            // The process answers, so it is alive; it is not ready until its coordinator runs.
            healthy = notAttached;
            body["reason"] = _notReady;
        }

        body["status"] = healthy ? what : $"not {what}";
        http.Response.StatusCode = healthy ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        http.Response.ContentType = "application/json";
        await http.Response.WriteAsync(body.ToJsonString() + "\n", http.RequestAborted);
    }

    public async ValueTask DisposeAsync()
    {
        _checks = null;
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

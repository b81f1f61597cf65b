using Akka.Configuration;
using Serilog;
using Serilog.Core;
using Serilog.Events;
using Serilog.Formatting;
using Serilog.Formatting.Compact;
using Serilog.Formatting.Display;

namespace Sessionization.Host.Runtime;

/// <summary>How log events are written: one line of text each, or one JSON object each (Serilog's compact JSON, rendered).</summary>
public enum LogFormat
{
    Text,
    Json,
}

/// <summary>
/// The process's log, through Microsoft.Extensions.Logging onto Serilog (Akka's own log is bridged into it by
/// Akka.Hosting). The file under the state directory gets information and above, exceptions in full; standard error
/// gets warnings and above when asked (a worker), one line each with the innermost cause. Times are UTC, and an
/// event's fields (batch, visits, failures in a row...) are properties in JSON.
/// </summary>
public static class Logs
{
    private const string TextFile = "{UtcTimestamp:yyyy-MM-ddTHH:mm:ss.fffZ} {Level:u3} [{Source}] {Message:lj}{NewLine}{Exception}";
    private const string TextConsole = "{UtcTimestamp:yyyy-MM-ddTHH:mm:ss.fffZ} {Level:u3} {Message:lj}{Cause}{NewLine}";

    private static string? _lastError;

    /// <summary>The last error logged in this process, used to explain why an actor stopped.</summary>
    public static string? LastError => Volatile.Read(ref _lastError);

    public static LogFormat Format(Config config)
    {
        var text = config.GetString("sessionization.log-format", "text");
        return text.ToLowerInvariant() switch
        {
            "text" => LogFormat.Text,
            "json" => LogFormat.Json,
            _ => throw new ConfigurationException($"sessionization.log-format '{text}' is not text or json"),
        };
    }

    /// <summary>A logger writing to <paramref name="file"/> (if given) and, if <c>sessionization.log-to-console</c> is on, to standard error.</summary>
    public static Logger Create(Config config, string? file)
    {
        var format = Format(config);
        var configuration = new LoggerConfiguration()
            .MinimumLevel.Information()
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            // Akka's own information (start-up, shutdown, plugin notices) is not the product's; its warnings and errors
            // are, and so is everything our actors (under /user) log.
            .Filter.ByExcluding(e => e.Level < LogEventLevel.Warning && IsAkkaInternal(e))
            .Enrich.With<CauseEnricher>()
            .WriteTo.Sink(new LastErrorSink(), LogEventLevel.Error);
        if (file is not null)
        {
            // Shared: a status or a read command in another process may append while a worker does.
            configuration = configuration.WriteTo.File(Formatter(format, TextFile), file, shared: true);
        }

        if (config.GetBoolean("sessionization.log-to-console", false))
            configuration = configuration.WriteTo.Console(Formatter(format, TextConsole), LogEventLevel.Warning, standardErrorFromLevel: LogEventLevel.Verbose);
        return configuration.CreateLogger();
    }

    private static bool IsAkkaInternal(LogEvent e) =>
        e.Properties.TryGetValue("SourceContext", out var context) && context is ScalarValue { Value: string category } && category.StartsWith("Akka", StringComparison.Ordinal)
        && !(e.Properties.TryGetValue("LogSource", out var source) && source is ScalarValue { Value: string path } && path.Contains("/user/", StringComparison.Ordinal));

    private static ITextFormatter Formatter(LogFormat format, string template) =>
        format == LogFormat.Json ? new RenderedCompactJsonFormatter() : new MessageTemplateTextFormatter(template, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>
    /// Adds <c>Source</c>: the actor that logged (Akka's events all come from one category), else the category; and
    /// <c>Cause</c>: the innermost exception's message, when the message does not already say it.
    /// </summary>
    private sealed class CauseEnricher : ILogEventEnricher
    {
        public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory)
        {
            var source = logEvent.Properties.TryGetValue("LogSource", out var path) && path is ScalarValue { Value: string actor } ? actor.Split('/')[^1]
                : logEvent.Properties.TryGetValue("SourceContext", out var context) && context is ScalarValue { Value: string category } ? category
                : "sessionize";
            logEvent.AddPropertyIfAbsent(propertyFactory.CreateProperty("Source", source));
            if (logEvent.Exception is not { } exception)
                return;
            var cause = Actors.Failures.Innermost(exception).Message.Split('\n')[0].Trim();
            if (!logEvent.RenderMessage(System.Globalization.CultureInfo.InvariantCulture).Contains(cause, StringComparison.Ordinal))
                logEvent.AddPropertyIfAbsent(propertyFactory.CreateProperty("Cause", ": " + cause));
        }
    }

    private sealed class LastErrorSink : ILogEventSink
    {
        public void Emit(LogEvent logEvent)
        {
            var message = logEvent.RenderMessage(System.Globalization.CultureInfo.InvariantCulture).Split('\n')[0].Trim();
            if (logEvent.Properties.TryGetValue("Cause", out var cause) && cause is ScalarValue { Value: string text })
                message += text;
            Volatile.Write(ref _lastError, message);
        }
    }
}

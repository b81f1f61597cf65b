using System.Globalization;
using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;

namespace Sessionization.Host.Runtime;

/// <summary>
/// Akka's logger for the CLI. Warnings and errors go, with their exceptions, to the log file under the state
/// directory; the worker also prints them to standard error as one line each. A failed <c>run</c> reports its
/// cause itself, as one line, so the console stays clean for tables and for that one line.
/// </summary>
public sealed class OneLineLogger : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    private static string? _lastError;
    private readonly string? _logFile;
    private readonly bool _toConsole;

    public OneLineLogger()
    {
        var config = Context.System.Settings.Config;
        _logFile = config.GetString("sessionization.log-file", null);
        _toConsole = config.GetBoolean("sessionization.log-to-console", false);

        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<Error>(e =>
        {
            var message = OneLine(WithCause(e.Message?.ToString() ?? "", e.Cause is { } cause ? Sessionization.Actors.Failures.Innermost(cause).Message : null));
            Volatile.Write(ref _lastError, message);
            Write("ERROR", e, message);
        });
        Receive<Warning>(w => Write("WARNING", w, OneLine(w.Message?.ToString() ?? "")));
        Receive<LogEvent>(_ => { });
    }

    /// <summary>The last error logged in this process, used to explain why an actor stopped.</summary>
    public static string? LastError => Volatile.Read(ref _lastError);

    private void Write(string level, LogEvent e, string message)
    {
        if (_toConsole)
            Console.Error.WriteLine($"sessionize: {level.ToLowerInvariant()}: {message}");
        if (_logFile is null)
            return;
        try
        {
            var detail = e is Error { Cause: { } cause } ? Environment.NewLine + cause : "";
            File.AppendAllText(_logFile, string.Create(CultureInfo.InvariantCulture, $"{e.Timestamp:yyyy-MM-dd HH:mm:ss.fff}Z {level} [{e.LogSource}] {e.Message}{detail}{Environment.NewLine}"));
        }
        catch (IOException)
        {
            // The log is a convenience; a full or read-only disk must not take the process down with it.
        }
    }

    private static string OneLine(string text) => text.Split('\n')[0].Trim();

    /// <summary>An actor's failure is logged with its exception's own message: the cause is said once.</summary>
    private static string WithCause(string message, string? cause) =>
        cause is null || message.Contains(cause, StringComparison.Ordinal) ? message
        : message.Length == 0 ? cause
        : $"{message}: {cause}";
}

using Akka.Actor;
using Akka.Dispatch;
using Akka.Event;

namespace Sessionization.Host.Runtime;

/// <summary>
/// Akka's logger for the CLI: warnings and errors go to standard error as one line each, without stack
/// traces, so that a failure reads as a sentence and standard output stays clean for tables.
/// </summary>
public sealed class OneLineLogger : ReceiveActor, IRequiresMessageQueue<ILoggerMessageQueueSemantics>
{
    private static string? _lastError;

    public OneLineLogger()
    {
        Receive<InitializeLogger>(_ => Sender.Tell(new LoggerInitialized()));
        Receive<Error>(e =>
        {
            var message = OneLine(e.Cause is { } cause ? $"{e.Message}: {Innermost(cause).Message}" : e.Message?.ToString() ?? "");
            _lastError = message;
            Console.Error.WriteLine($"sessionize: error: {message}");
        });
        Receive<Warning>(w => Console.Error.WriteLine($"sessionize: warning: {OneLine(w.Message?.ToString() ?? "")}"));
        Receive<LogEvent>(_ => { });
    }

    /// <summary>The last error logged in this process, used to explain why an actor stopped.</summary>
    public static string? LastError => Volatile.Read(ref _lastError);

    private static Exception Innermost(Exception e) => e.InnerException is null ? e : Innermost(e.InnerException);

    private static string OneLine(string text) => text.Split('\n')[0].Trim();
}

using System.Collections.Concurrent;
using System.Diagnostics;

namespace Sessionization.Tests.Cli;

/// <summary>A real <c>sessionize worker</c> process whose output lines a test can wait for.</summary>
public sealed class RunningWorker : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private readonly BlockingCollection<string> _lines = [];

    public RunningWorker(string data, params string[] flags)
    {
        Process = Process.Start(SessionizeProcess.StartInfo(data, ["worker", "--poll-interval", "100ms", .. flags]))!;
        Process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                _lines.Add(e.Data);
        };
        Process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                _lines.Add("stderr: " + e.Data);
        };
        Process.BeginOutputReadLine();
        Process.BeginErrorReadLine();
    }

    public Process Process { get; }

    /// <summary>Runs <c>sessionize</c> with <paramref name="args"/> while a worker polls <paramref name="data"/>.</summary>
    public static CliResult RunWhileAWorkerPolls(string data, params string[] args)
    {
        using var worker = new RunningWorker(data);
        worker.WaitFor("worker: polling");
        return SessionizeProcess.Run(data, args);
    }

    /// <summary>Every line the worker printed that a <see cref="WaitFor"/> has looked at.</summary>
    public List<string> Lines { get; } = [];

    /// <summary>
    /// Waits for the worker to print a line starting with <paramref name="prefix"/>; what came before is returned for
    /// messages. The patience is for the whole wait, so a worker that keeps printing other lines does not hold it forever.
    /// </summary>
    public string WaitFor(string prefix) => WaitFor(l => l.StartsWith(prefix, StringComparison.Ordinal), $"a line starting '{prefix}'");

    /// <summary>Waits for a warning on standard error whose message starts with <paramref name="message"/>, after its UTC timestamp.</summary>
    public string WaitForWarning(string message) =>
        WaitFor(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^stderr: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WRN ") && l[(l.IndexOf(" WRN ", StringComparison.Ordinal) + 5)..].StartsWith(message, StringComparison.Ordinal), $"a warning '{message}...'");

    private string WaitFor(Func<string, bool> wanted, string what)
    {
        var seen = new List<string>();
        var deadline = DateTime.UtcNow + Patience;
        while (deadline - DateTime.UtcNow is { Ticks: > 0 } left && _lines.TryTake(out var line, left))
        {
            seen.Add(line);
            Lines.Add(line);
            if (wanted(line))
                return line;
        }

        throw new TimeoutException($"worker never printed {what}; it printed:\n{string.Join('\n', seen)}");
    }

    public void Signal(string signal) => Process.Start("kill", ["-" + signal, Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();

    public void Dispose()
    {
        if (!Process.HasExited)
            Process.Kill(entireProcessTree: true);
        Process.Dispose();
    }
}

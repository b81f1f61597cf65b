using System.Text;
using Spectre.Console;

namespace Sessionization.Bench;

/// <summary>
/// The benchmark's log on a terminal: each line above a live bar of the measurements done, with the time remaining.
/// Every measurement reports exactly one line when it ends, so the bar counts lines; off a terminal the lines are
/// plain, so scripts and CI logs stay clean.
/// </summary>
public sealed class BenchProgress : TextWriter
{
    private readonly ProgressTask _task;
    private readonly StringBuilder _line = new();

    private BenchProgress(ProgressTask task) => _task = task;

    public override Encoding Encoding => Encoding.UTF8;

    /// <summary>Whether the benchmark's log goes to a terminal that redraws (never with --json: its log is stderr).</summary>
    public static bool Available(bool json) => !json && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>Runs <paramref name="work"/> with its log drawn above a bar of <paramref name="measurements"/> steps.</summary>
    public static async Task RunAsync(int measurements, Func<TextWriter, Task> work)
    {
        await AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask("bench: starting", maxValue: Math.Max(measurements, 1));
                await using var log = new BenchProgress(task);
                await work(log);
                task.Value = task.MaxValue;
                task.Description = "bench: done";
            });
    }

    public override void Write(char value)
    {
        if (value != '\n')
        {
            _line.Append(value);
            return;
        }

        var line = _line.ToString();
        _line.Clear();
        AnsiConsole.WriteLine(line);
        _task.Increment(1);
        var colon = line.IndexOf(':', StringComparison.Ordinal);
        _task.Description = Markup.Escape($"bench: {(colon > 0 ? line[..colon] : line)} done");
    }

    public override void Write(string? value)
    {
        foreach (var c in value ?? "")
            Write(c);
    }
}

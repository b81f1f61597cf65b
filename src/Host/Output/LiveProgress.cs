using Spectre.Console;

namespace Sessionization.Host.Output;

/// <summary>
/// Live progress (a bar, the rate, the time remaining) while a long command works, when its output is a terminal;
/// otherwise nothing but the command's own plain lines, so scripts and CI logs stay clean.
/// </summary>
public sealed class LiveProgress
{
    private readonly ProgressTask? _task;

    private LiveProgress(ProgressTask? task) => _task = task;

    /// <summary>Whether <paramref name="output"/> is the console, and the console a terminal that redraws.</summary>
    public static bool Interactive(TextWriter output) =>
        ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>Runs <paramref name="work"/> with a progress bar of <paramref name="total"/> units on a terminal.</summary>
    /// <param name="terminal">The terminal to draw on (<see cref="Commands.CommandContext.ProgressTerminal"/>); null: plain lines only.</param>
    public static async Task<T> RunAsync<T>(TextWriter? terminal, string description, double total, Func<LiveProgress, Task<T>> work)
    {
        if (terminal is null)
            return await work(new LiveProgress(null));
        var result = default(T)!;
        await AnsiConsole.Progress()
            // The last state stays on screen: the bar at 100%, with the rate the command ended on.
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(Markup.Escape(description), maxValue: Math.Max(total, 1));
                result = await work(new LiveProgress(task));
                task.Value = task.MaxValue;
            });
        return result;
    }

    /// <summary>A line of the command's own output: above the bar on a terminal, plain otherwise.</summary>
    public void WriteLine(TextWriter output, string line)
    {
        if (_task is null)
            output.WriteLine(line);
        else
            AnsiConsole.WriteLine(line);
    }

    public void Advance(double units, string? description = null)
    {
        if (_task is null)
            return;
        _task.Increment(units);
        if (description is not null)
            _task.Description = Markup.Escape(description);
    }
}

using System.Diagnostics;
using System.Globalization;

namespace Sessionization.Bench;

/// <summary>Runs the real <c>sessionize</c> host as a child process and reports its wall time and peak resident memory.</summary>
public sealed class Host(string hostDll)
{
    public sealed record Result(TimeSpan Wall, long PeakRssBytes, string Out);

    public Result Run(string baseDirectory, params string[] args)
    {
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(Info(baseDirectory, args))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        var wall = clock.Elapsed;
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"sessionize {string.Join(' ', args)} failed: {stderr.Result.Trim()}");
        return new Result(wall, PeakRss(stderr.Result), stdout.Result);
    }

    public Process Start(string baseDirectory, params string[] args) => Process.Start(Info(baseDirectory, args))!;

    private ProcessStartInfo Info(string baseDirectory, string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(hostDll);
        foreach (var a in args)
            info.ArgumentList.Add(a);
        info.ArgumentList.Add("--base-dir");
        info.ArgumentList.Add(baseDirectory);
        info.Environment["SESSIONIZATION_REPORT_PEAK_RSS"] = "1";
        return info;
    }

    public static long PeakRss(string stderr)
    {
        var line = stderr.Split('\n').LastOrDefault(l => l.StartsWith("peak_rss_bytes=", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line["peak_rss_bytes=".Length..].Trim(), CultureInfo.InvariantCulture);
    }
}

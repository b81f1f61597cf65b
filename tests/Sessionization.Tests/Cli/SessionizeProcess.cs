using System.Diagnostics;
using System.Text;

namespace Sessionization.Tests.Cli;

public sealed record CliResult(int ExitCode, string Out, string Err)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Out}\n--- stderr\n{Err}";
}

/// <summary>Runs the real <c>sessionize</c> host as a separate process, as a user would.</summary>
public static class SessionizeProcess
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);

    public static string HostDll => Path.Combine(AppContext.BaseDirectory, "sessionize.dll");

    public static ProcessStartInfo StartInfo(string? baseDir, IEnumerable<string> args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        info.ArgumentList.Add(HostDll);
        foreach (var a in args)
            info.ArgumentList.Add(a);
        if (baseDir is not null)
        {
            info.ArgumentList.Add("--base-dir");
            info.ArgumentList.Add(baseDir);
        }

        info.Environment.Remove("SESSIONIZATION_BASE_DIR");
        return info;
    }

    public static CliResult Run(string? baseDir, params string[] args) => RunWith(baseDir, null, null, args);

    public static CliResult RunWithInput(string? baseDir, string? stdin, params string[] args) => RunWith(baseDir, stdin, null, args);

    public static CliResult RunWith(string? baseDir, string? stdin, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        var info = StartInfo(baseDir, args);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
            info.Environment[name] = value;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (stdin is not null)
            process.StandardInput.Write(stdin);
        process.StandardInput.Close();
        if (!process.WaitForExit(Limit))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"sessionize {string.Join(' ', args)} did not finish within {Limit}");
        }

        return new CliResult(process.ExitCode, stdout.Result, stderr.Result);
    }

    public static CliResult Ok(string? baseDir, params string[] args)
    {
        var result = Run(baseDir, args);
        Assert.True(result.ExitCode == 0, $"sessionize {string.Join(' ', args)} failed:\n{result}");
        return result;
    }
}

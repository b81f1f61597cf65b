using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Sessionization.Tests.Cli;

/// <summary>Live progress on a terminal (a pseudo-terminal from util-linux's <c>script</c>), plain lines when piped.</summary>
public sealed partial class ProgressProcessTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private string Data => _temp.Combine("data");

    /// <summary>Runs the CLI with a terminal as its standard output; the screen's text with the escape sequences taken out.</summary>
    private static string OnATerminal(params string[] args)
    {
        var command = string.Join(' ', new[] { "dotnet", SessionizeProcess.HostDll }.Concat(args).Select(a => "'" + a.Replace("'", "'\\''") + "'"));
        var info = new ProcessStartInfo("script", ["-qec", command, "/dev/null"]) { RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false };
        info.Environment["COLUMNS"] = "200";
        info.Environment.Remove("SESSIONIZATION_BASE_DIR");
        using var process = Process.Start(info)!;
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(TimeSpan.FromMinutes(3)));
        Assert.True(process.ExitCode == 0, output);
        return Escapes().Replace(output, "").Replace("\r", "\n", StringComparison.Ordinal);
    }

    [Fact]
    public void On_a_terminal_run_and_generate_show_their_progress_and_piped_they_print_plain_lines()
    {
        var generated = OnATerminal("generate", "--users", "300", "--visits", "3000", "--commits", "3", "--base-dir", Data);
        Assert.Contains("generate: commit 3 of 3 (version 2)", generated);
        Assert.Contains("generated 3000 visits over 300 users in 3 commits", generated);

        var run = OnATerminal("run", "--max-files-per-batch", "1", "--base-dir", Data);
        Assert.Contains("batch 0: 1 file (visits_table v0..v0), 1000 visits", run);
        Assert.Matches(@"run: batch 2, 3,000 of 3,000 visits, [\d,]+ visits/s", run);
        Assert.Contains("run: 3 batches committed", run);

        SessionizeProcess.Ok(Data, "generate", "--users", "300", "--visits", "3000", "--commits", "2", "--seed", "2");
        var piped = SessionizeProcess.Ok(Data, "run").Out;
        Assert.DoesNotContain("\u001b", piped);
        Assert.DoesNotContain("visits/s", piped);
        Assert.StartsWith("batch 3: 2 files", piped);
    }

    [GeneratedRegex(@"\x1b(\[[0-9;?]*[a-zA-Z]|[=>])")]
    private static partial Regex Escapes();

    public void Dispose() => _temp.Dispose();
}

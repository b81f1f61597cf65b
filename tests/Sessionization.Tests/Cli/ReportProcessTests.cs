using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Sessionization.Tests.Cli;

/// <summary><c>report --out</c> from real tables, rendered by a real browser: Debian's Chromium, headless.</summary>
public sealed partial class ReportProcessTests : IDisposable
{
    private static readonly string[] Charts = ["sessions-per-hour", "session-duration", "pages-per-session", "batch-duration", "batch-lag"];
    private readonly TempDirectory _temp = new();

    private string Data => _temp.Combine("data");

    [Fact]
    public void The_report_is_one_small_self_contained_page_whose_charts_a_browser_renders()
    {
        SessionizeProcess.Ok(Data, "generate", "--users", "200", "--visits", "4000", "--commits", "4");
        SessionizeProcess.Ok(Data, "run", "--max-files-per-batch", "1");
        SessionizeProcess.Ok(Data, "run", "--end-of-input");
        var page = _temp.Combine("out/report.html");

        var printed = SessionizeProcess.Ok(Data, "report", "--out", page).Out;
        Assert.Matches(@"^report: .*report\.html \([\d.]+ KiB; [\d,]+ sessions, 5 batches\)\n$", printed);
        var html = File.ReadAllText(page);
        Assert.True(html.Length < 100_000, $"the page is {html.Length} bytes");
        // Nothing is fetched when it is viewed: no scripts, stylesheets, images or frames from elsewhere.
        Assert.DoesNotMatch(@"(src|href)\s*=", html);
        Assert.DoesNotContain("<script", html);

        var dom = Chromium.Run("--dump-dom", new Uri(page).AbsoluteUri);
        foreach (var chart in Charts)
        {
            var svg = Regex.Match(dom, $"<svg[^>]*id=\"{chart}\"[^>]*>(.*?)</svg>", RegexOptions.Singleline);
            Assert.True(svg.Success, $"chart {chart} is not in the rendered page");
            Assert.True(Bars().Matches(svg.Groups[1].Value).Count(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) > 0) > 0, $"chart {chart} has no bars");
        }

        Assert.Equal(5, Bars().Matches(Regex.Match(dom, "<svg[^>]*id=\"batch-duration\".*?</svg>", RegexOptions.Singleline).Value).Count);
        var shot = _temp.Combine("report.png");
        Chromium.Run("--screenshot=" + shot, "--window-size=1150,1500", new Uri(page).AbsoluteUri);
        Assert.True(new FileInfo(shot).Length > 10_000, "the screenshot is blank");
    }

    [Fact]
    public void A_report_before_any_batch_is_refused_in_one_line()
    {
        Directory.CreateDirectory(Data);
        var result = SessionizeProcess.Run(Data, "report", "--out", _temp.Combine("r.html"));
        Assert.Equal(1, result.ExitCode);
        Assert.Equal($"sessionize: no sessions table in {Data} (run has not committed a batch yet)\n", result.Err);
    }

    [GeneratedRegex("<rect class=\"bar\"[^>]* height=\"([\\d.]+)\"")]
    private static partial Regex Bars();

    public void Dispose() => _temp.Dispose();

    /// <summary>Debian's Chromium, installed with apt-get the first time a test needs it (the tests run as root in CI).</summary>
    private static class Chromium
    {
        private static readonly Lazy<string> Binary = new(Install);

        public static string Run(params string[] args)
        {
            var info = new ProcessStartInfo(Binary.Value) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars" }.Concat(args))
                info.ArgumentList.Add(a);
            using var process = Process.Start(info)!;
            var errors = process.StandardError.ReadToEndAsync();
            var output = process.StandardOutput.ReadToEnd();
            Assert.True(process.WaitForExit(TimeSpan.FromMinutes(2)), "chromium did not finish");
            Assert.True(process.ExitCode == 0, $"chromium failed: {errors.Result}");
            return output;
        }

        private static string Install()
        {
            const string path = "/usr/bin/chromium";
            if (File.Exists(path))
                return path;
            foreach (var command in new[] { "apt-get update -qq", "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium" })
            {
                using var apt = Process.Start(new ProcessStartInfo("bash", ["-c", command]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
                var errors = apt.StandardError.ReadToEndAsync();
                apt.StandardOutput.ReadToEnd();
                apt.WaitForExit();
                Assert.True(apt.ExitCode == 0, $"'{command}' failed (the report test needs Debian's chromium package): {errors.Result}");
            }

            return path;
        }
    }
}

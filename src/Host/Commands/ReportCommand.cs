using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Sessionization.Domain;
using Sessionization.Host.Runtime;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Tables;

namespace Sessionization.Host.Commands;

/// <summary>
/// <c>report --out FILE</c>: one self-contained HTML page (inline SVG and CSS, no scripts, nothing fetched when it is
/// viewed) with the charts a product owner looks at: sessions per hour, session duration, pages per session, and each
/// batch's duration and lag.
/// </summary>
public static class ReportCommand
{
    /// <summary>The hours shown in "sessions per hour": the latest this many hours that have sessions.</summary>
    private const int HoursShown = 72;

    private static readonly (string Label, long UpToMicros)[] DurationBuckets =
    [
        ("0 s", 0), ("< 1 min", 60 * Durations.MicrosPerSecond), ("1-5 min", 5 * Durations.MicrosPerMinute), ("5-15 min", 15 * Durations.MicrosPerMinute),
        ("15-30 min", 30 * Durations.MicrosPerMinute), ("30-60 min", 60 * Durations.MicrosPerMinute), ("1-2 h", 120 * Durations.MicrosPerMinute), ("> 2 h", long.MaxValue),
    ];

    private static readonly (string Label, long UpTo)[] PageBuckets =
        [("1", 1), ("2", 2), ("3", 3), ("4", 4), ("5", 5), ("6-10", 10), ("11-20", 20), ("21-50", 50), ("> 50", long.MaxValue)];

    public static async Task<int> RunAsync(CommandContext context, string outPath, CancellationToken cancellationToken)
    {
        context.RequireBaseDirectory();
        var sessions = SessionTable.Completed(context.BaseDirectory);
        if (!sessions.Delta.Exists)
            throw new UserFacingException($"no sessions table in {context.BaseDirectory} (run has not committed a batch yet)");

        // One pass over the sessions, batch by batch: only the counts are kept.
        var perHour = new SortedDictionary<long, long>();
        var durations = new long[DurationBuckets.Length];
        var pages = new long[PageBuckets.Length];
        long total = 0, totalVisits = 0;
        await foreach (var row in sessions.ReadInBatchOrderAsync(cancellationToken))
        {
            total++;
            totalVisits += row.VisitCount;
            var hour = row.StartTimeMicros - Mod(row.StartTimeMicros, 3600 * Durations.MicrosPerSecond);
            perHour[hour] = perHour.GetValueOrDefault(hour) + 1;
            durations[Array.FindIndex(DurationBuckets, b => row.EndTimeMicros - row.StartTimeMicros <= b.UpToMicros)]++;
            pages[Array.FindIndex(PageBuckets, b => row.VisitCount <= b.UpTo)]++;
        }

        var batches = Batches(sessions, VisitsTable.In(context.BaseDirectory));
        var hours = perHour.Reverse().Take(HoursShown).Reverse().ToList();
        var html = new StringBuilder();
        html.Append(CultureInfo.InvariantCulture, $$"""
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>Sessionization report</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
            h1{font-size:22px} h2{font-size:16px;margin:28px 0 4px} p.note{color:#666;margin:0 0 8px}
            .chart rect.bar{fill:#4a7fc1} .chart text{font-size:11px;fill:#444}
            .chart line{stroke:#bbb} table.facts td{padding:2px 16px 2px 0}
            </style></head><body>
            <h1>Sessionization report</h1>
            <table class="facts">
            <tr><td>base directory</td><td>{{E(context.BaseDirectory)}}</td></tr>
            <tr><td>generated</td><td>{{DateTime.UtcNow:yyyy-MM-dd HH:mm:ss}} UTC</td></tr>
            <tr><td>sessions written</td><td>{{total:N0}} ({{totalVisits:N0}} visits, {{(total == 0 ? 0 : (double)totalVisits / total):F2}} pages per session)</td></tr>
            <tr><td>batches committed</td><td>{{batches.Count:N0}}</td></tr>
            </table>

            """);
        Chart(html, "sessions-per-hour", "Sessions per hour", $"By the hour of the session's start_time (UTC){(perHour.Count > HoursShown ? $", the latest {HoursShown} hours" : "")}.",
            hours.Select(h => (Timestamps.ToSparkString(h.Key)[5..13] + "h", (double)h.Value)).ToList(), "sessions");
        Chart(html, "session-duration", "Session duration", "end_time - start_time of each written session.",
            DurationBuckets.Select((b, i) => (b.Label, (double)durations[i])).ToList(), "sessions");
        Chart(html, "pages-per-session", "Pages per session", "visit_count of each written session.",
            PageBuckets.Select((b, i) => (b.Label, (double)pages[i])).ToList(), "sessions");
        Chart(html, "batch-duration", "Batch duration", "From the batch's start to its sessions commit, by batch number (batches from before this was recorded show 0).",
            batches.Select(b => (b.Batch.ToString(CultureInfo.InvariantCulture), b.DurationSeconds ?? 0)).ToList(), "s");
        Chart(html, "batch-lag", "Lag", "From the commit of the oldest visits a batch took to the batch's sessions commit, by batch number.",
            batches.Select(b => (b.Batch.ToString(CultureInfo.InvariantCulture), b.LagSeconds ?? 0)).ToList(), "s");
        html.Append("</body></html>\n");

        var full = Path.GetFullPath(outPath);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        await File.WriteAllTextAsync(full, html.ToString(), new UTF8Encoding(false), cancellationToken);
        context.Output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"report: {full} ({new FileInfo(full).Length / 1024.0:F1} KiB; {total:N0} sessions, {batches.Count:N0} batches)"));
        return 0;
    }

    private sealed record BatchFacts(long Batch, double? DurationSeconds, double? LagSeconds);

    /// <summary>Each batch's commit of the sessions table, with the provenance it recorded (a rewound batch's latest commit counts).</summary>
    private static List<BatchFacts> Batches(SessionTable sessions, VisitsTable visits)
    {
        var facts = new SortedDictionary<long, BatchFacts>();
        foreach (var version in sessions.Delta.ListLog().Commits)
        {
            var info = sessions.Delta.ReadCommit(version).OfType<CommitInfoAction>().FirstOrDefault()?.Content;
            if (info?["sessionization"] is not JsonObject provenance || info["timestamp"]?.GetValue<long>() is not { } committed)
                continue;
            var batch = provenance["batch"]!.GetValue<long>();
            double? duration = provenance["startedAt"]?.GetValue<long>() is { } started ? Math.Max(0, committed - started) / 1000.0 : null;
            double? lag = null;
            var from = provenance["fromVersion"]!.GetValue<long>();
            var visitsCommit = visits.Delta.CommitPath(from);
            if (File.Exists(visitsCommit))
                lag = Math.Max(0, committed - new DateTimeOffset(File.GetLastWriteTimeUtc(visitsCommit), TimeSpan.Zero).ToUnixTimeMilliseconds()) / 1000.0;
            facts[batch] = new BatchFacts(batch, duration, lag);
        }

        return [.. facts.Values];
    }

    /// <summary>A bar chart in inline SVG: one bar per label, its value above it, a few labels under the axis.</summary>
    private static void Chart(StringBuilder html, string id, string title, string note, List<(string Label, double Value)> bars, string unit)
    {
        const double width = 1000, height = 230, left = 50, bottom = 40, top = 26;
        html.Append(CultureInfo.InvariantCulture, $"<h2>{E(title)}</h2><p class=\"note\">{E(note)}</p>\n");
        html.Append(CultureInfo.InvariantCulture, $"<svg class=\"chart\" id=\"{id}\" role=\"img\" aria-label=\"{E(title)}\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\">\n");
        var max = bars.Count == 0 ? 0 : bars.Max(b => b.Value);
        var plotHeight = height - bottom - top;
        html.Append(CultureInfo.InvariantCulture, $"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width}\" y2=\"{height - bottom}\"/>");
        html.Append(CultureInfo.InvariantCulture, $"<text x=\"0\" y=\"12\">{Number(max)} {E(unit)}</text>");
        if (bars.Count == 0)
        {
            html.Append(CultureInfo.InvariantCulture, $"<text x=\"{left + 10}\" y=\"{height / 2}\">nothing yet</text>");
        }

        var slot = bars.Count == 0 ? 0 : (width - left) / bars.Count;
        var labelEvery = Math.Max(1, (int)Math.Ceiling(bars.Count / 24.0));
        for (var i = 0; i < bars.Count; i++)
        {
            var (label, value) = bars[i];
            var h = max <= 0 ? 0 : value / max * plotHeight;
            var x = left + (i * slot) + (slot * 0.1);
            html.Append(CultureInfo.InvariantCulture,
                $"<rect class=\"bar\" x=\"{x:F1}\" y=\"{height - bottom - h:F1}\" width=\"{slot * 0.8:F1}\" height=\"{h:F1}\"><title>{E(label)}: {Number(value)} {E(unit)}</title></rect>");
            if (i % labelEvery == 0)
                html.Append(CultureInfo.InvariantCulture, $"<text x=\"{x:F1}\" y=\"{height - bottom + 14}\">{E(label)}</text>");
        }

        html.Append("</svg>\n");
    }

    private static string Number(double value) =>
        value == Math.Floor(value) ? value.ToString("N0", CultureInfo.InvariantCulture) : value.ToString("N2", CultureInfo.InvariantCulture);

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static long Mod(long value, long by) => ((value % by) + by) % by;
}

using System.Globalization;
using System.Text.Json.Nodes;
using Sessionization.Domain;
using Sessionization.Host.Input;
using Sessionization.Host.Output;
using Sessionization.Host.Runtime;
using Sessionization.Persistence.Tables;

namespace Sessionization.Host.Commands;

/// <summary>Commands that write visits or print tables.</summary>
public static class TableCommands
{
    public static async Task<int> GenerateSeedRowsAsync(CommandContext context, IReadOnlyList<(long UserId, string Page)> rows, string operation)
    {
        var visits = SeedRows.Stamp(rows, () => Timestamps.ToMicros(DateTime.UtcNow));
        return await AppendAsync(context, visits, operation);
    }

    public static async Task<int> AppendVisitsAsync(CommandContext context, string file)
    {
        List<Visit> visits;
        if (file == "-")
        {
            visits = VisitsCsv.Parse(Console.In, "standard input");
        }
        else
        {
            if (!File.Exists(file))
                throw new UserFacingException($"{file}: no such file");
            using var reader = new StreamReader(file);
            visits = VisitsCsv.Parse(reader, file);
        }

        if (visits.Count == 0)
        {
            context.Output.WriteLine($"{file}: no visits; nothing appended");
            return 0;
        }

        return await AppendAsync(context, visits, "append-visits");
    }

    public static async Task<int> GenerateAsync(CommandContext context, long users, long visits, int commits, ulong seed, DateTimeOffset start)
    {
        if (users < 1 || visits < 0 || commits < 1)
            throw new UserFacingException("generate needs --users >= 1, --visits >= 0 and --commits >= 1");
        Directory.CreateDirectory(context.BaseDirectory);
        var table = VisitsTable.In(context.BaseDirectory);
        long first = -1, last = -1;
        await LiveProgress.RunAsync(context.ProgressTerminal, "generate", commits, async progress =>
        {
            var made = 0;
            foreach (var commit in SyntheticVisits.Generate(users, visits, commits, seed, start))
            {
                last = await table.AppendAsync(commit, "generate");
                first = first < 0 ? last : first;
                progress.Advance(1, string.Create(CultureInfo.InvariantCulture, $"generate: commit {++made} of {commits} (version {last})"));
            }

            return made;
        });

        context.Output.WriteLine($"generated {visits} visits over {users} users in {commits} commits (versions {first}..{last}) in {table.Delta.Root}");
        return 0;
    }

    private static async Task<int> AppendAsync(CommandContext context, List<Visit> visits, string operation)
    {
        Directory.CreateDirectory(context.BaseDirectory);
        var table = VisitsTable.In(context.BaseDirectory);
        var version = await table.AppendAsync(visits, operation);
        context.Output.WriteLine($"appended {visits.Count} visits to {VisitsTable.DirectoryName} as version {version}");
        return 0;
    }

    public static async Task<int> ReadTablesAsync(CommandContext context, OutputFormat format, int limit)
    {
        context.RequireBaseDirectory();
        var table = VisitsTable.In(context.BaseDirectory);
        if (!table.Delta.Exists)
            throw new UserFacingException($"no {VisitsTable.DirectoryName} in {context.BaseDirectory} (run generate-new-rows or append-visits first)");
        var visits = new TitledTable("VISITS", "visits", ["user_id", "visit_time", "page"], ct => table.ReadInOrderAsync(ct).Select(v => new TableRow(
            [Num(v.UserId), Timestamps.ToSparkString(v.VisitTimeMicros), v.Page],
            () => [v.UserId, Timestamps.ToIsoString(v.VisitTimeMicros), v.Page])));
        await Print(context, [visits], format, withTitles: false, limit);
        return 0;
    }

    /// <param name="only">pending or sessions: that table alone; null: both (not in csv, which holds one table).</param>
    public static async Task<int> ReadSessionTablesAsync(CommandContext context, OutputFormat format, bool wide, int limit, string? only = null)
    {
        if (format == OutputFormat.Csv && only is null)
            throw new UserFacingException("--format csv prints one table: add --table pending or --table sessions");
        context.RequireBaseDirectory();
        var pendingTable = SessionTable.Pending(context.BaseDirectory);
        var completedTable = SessionTable.Completed(context.BaseDirectory);
        Func<CancellationToken, IAsyncEnumerable<SessionRecord>> pending = ct => pendingTable.ReadInBatchOrderAsync(ct);
        // In event-time mode the table holds each batch's changes, not a snapshot: what is open now comes from a pass
        // over both tables that holds each user's latest pending rows, and only when the pending table is shown.
        if (SessionRules.IsEventTime(pendingTable.Log.LatestSessionRules()))
            pending = ct => OpenSessionsAsync(pendingTable, completedTable, ct);

        string[] pendingColumns = wide
            ? ["user_id", "concatenated_pages", "batch_number", "start_time", "end_time", "visit_count"]
            : ["user_id", "concatenated_pages", "batch_number"];
        string[] completedColumns = wide
            ? ["user_id", "concatenated_pages", "start_time", "end_time", "visit_count", "batch_number"]
            : ["user_id", "concatenated_pages"];
        var tables = new[]
        {
            Project("PENDING SESSIONS", "pending_sessions", pendingColumns, pending),
            Project("SESSIONS", "sessions", completedColumns, ct => completedTable.ReadInBatchOrderAsync(ct)),
        }.Where(t => only is null || t.JsonName == (only == "pending" ? "pending_sessions" : "sessions")).ToList();
        await Print(context, tables, format, withTitles: true, limit);
        return 0;
    }

    private static async IAsyncEnumerable<SessionRecord> OpenSessionsAsync(
        SessionTable pending, SessionTable completed, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var row in await OpenSessions.FromAsync(pending.ReadInBatchOrderAsync(cancellationToken), completed.ReadInBatchOrderAsync(cancellationToken), cancellationToken))
            yield return row;
    }

    public static async Task<int> ReadQuarantineAsync(CommandContext context, OutputFormat format, int limit)
    {
        context.RequireBaseDirectory();
        var rows = (await QuarantineTable.In(context.BaseDirectory).ReadAllAsync())
            .OrderBy(r => r.BatchNumber).ThenBy(r => r.SourceFile, StringComparer.Ordinal).ThenBy(r => r.Row ?? 0).ToList();
        string[] headers = ["batch_number", "source_file", "row", "user_id", "visit_time", "page", "reason"];
        var quarantine = new TitledTable("QUARANTINE", "quarantine", headers, _ => rows.ToAsyncEnumerable().Select(r => new TableRow(
            [Num(r.BatchNumber), r.SourceFile, r.Row is { } n ? Num(n) : null, r.UserId is { } u ? Num(u) : null,
                r.VisitTimeMicros is { } t ? Timestamps.ToSparkString(t) : null, r.Page, r.Reason],
            () => [r.BatchNumber, r.SourceFile, r.Row, r.UserId, r.VisitTimeMicros is { } time ? Timestamps.ToIsoString(time) : null, r.Page, r.Reason])));
        await Print(context, [quarantine], format, withTitles: false, limit);
        return 0;
    }

    /// <summary>
    /// Standard output is written through a large buffer: the console's own writer flushes every line, which for a
    /// million rows costs more than reading them.
    /// </summary>
    private static async Task Print(CommandContext context, IReadOnlyList<TitledTable> tables, OutputFormat format, bool withTitles, int limit)
    {
        if (!ReferenceEquals(context.Output, Console.Out))
        {
            await TableOutput.WriteAsync(context.Output, tables, format, withTitles, limit);
            return;
        }

        await using var output = new StreamWriter(Console.OpenStandardOutput(), new System.Text.UTF8Encoding(false), 1 << 16) { NewLine = "\n" };
        await TableOutput.WriteAsync(output, tables, format, withTitles, limit);
    }

    private static TitledTable Project(string title, string jsonName, string[] columns, Func<CancellationToken, IAsyncEnumerable<SessionRecord>> rows) =>
        new(title, jsonName, columns, ct => rows(ct).Select(r => new TableRow(
            columns.Select(c => (string?)Cell(r, c)).ToList(),
            () => columns.Select(c => Value(r, c)).ToList())));

    private static string Cell(SessionRecord r, string column) => column switch
    {
        "user_id" => Num(r.UserId),
        "concatenated_pages" => r.ConcatenatedPages,
        "batch_number" => Num(r.BatchNumber),
        "start_time" => Timestamps.ToSparkString(r.StartTimeMicros),
        "end_time" => Timestamps.ToSparkString(r.EndTimeMicros),
        "visit_count" => Num(r.VisitCount),
        _ => throw new ArgumentOutOfRangeException(nameof(column)),
    };

    private static JsonNode? Value(SessionRecord r, string column) => column switch
    {
        "user_id" => r.UserId,
        "batch_number" => r.BatchNumber,
        "visit_count" => r.VisitCount,
        "start_time" => Timestamps.ToIsoString(r.StartTimeMicros),
        "end_time" => Timestamps.ToIsoString(r.EndTimeMicros),
        _ => Cell(r, column),
    };

    private static string Num(long value) => value.ToString(CultureInfo.InvariantCulture);
}

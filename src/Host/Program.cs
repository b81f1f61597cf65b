using System.CommandLine;
using System.Globalization;
using Akka.Configuration;
using Sessionization.Host.Commands;
using Sessionization.Host.Configuration;
using Sessionization.Host.Input;
using Sessionization.Host.Output;
using Sessionization.Host.Runtime;
using Sessionization.Persistence.Delta;

namespace Sessionization.Host;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var root = BuildCommandLine();
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // "Required command was not provided" is noise beside the token that was not understood.
            var errors = parsed.Errors.Select(e => OneLine(e.Message)).Where(m => !m.StartsWith("Required command", StringComparison.Ordinal)).DefaultIfEmpty(OneLine(parsed.Errors[0].Message));
            Console.Error.WriteLine($"sessionize: {string.Join("; ", errors)} (see 'sessionize --help')");
            return 2;
        }

        try
        {
            return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = TimeSpan.FromSeconds(60) });
        }
        catch (Exception e) when (Describe(e) is { } message)
        {
            Console.Error.WriteLine($"sessionize: {message}");
            return 1;
        }
        finally
        {
            // The benchmark reads a child's memory high-water mark from here; the kernel keeps it per process.
            if (Environment.GetEnvironmentVariable("SESSIONIZATION_REPORT_PEAK_RSS") == "1" && File.Exists("/proc/self/status"))
            {
                var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
                if (line is not null)
                    Console.Error.WriteLine($"peak_rss_bytes={long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024}");
            }
        }
    }

    /// <summary>A parser message on one line: "Argument 'xml' not recognized. Must be one of:" and its choices, comma-separated.</summary>
    private static string OneLine(string message)
    {
        var lines = message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        return lines.Length <= 1 ? message.Trim() : $"{lines[0]} {string.Join(", ", lines.Skip(1))}";
    }

    /// <summary>The one line a user sees for a failure; unexpected exceptions keep their type name so they can be reported.</summary>
    private static string? Describe(Exception e) => e switch
    {
        AggregateException { InnerException: { } inner } => Describe(inner),
        OperationCanceledException => "cancelled",
        UserFacingException or DeltaTableException or ConfigurationException => e.Message,
        UnauthorizedAccessException or IOException => e.Message,
        _ => $"{e.GetType().Name}: {e.Message}",
    };

    public static RootCommand BuildCommandLine()
    {
        var baseDir = new Option<string?>("--base-dir")
        {
            Description = "Directory holding visits_table, pending_sessions, sessions and the state databases (default ./data; env SESSIONIZATION_BASE_DIR)",
            Recursive = true,
        };
        var configFile = new Option<string?>("--config")
        {
            Description = "A HOCON file of settings layered over the defaults in hocon/ (env SESSIONIZATION_CONFIG)",
            Recursive = true,
        };
        var logFormat = new Option<string?>("--log-format")
        {
            Description = "Log lines (state/sessionize.log, and a worker's standard error): text (default) or json, one object per event (env SESSIONIZATION_LOG_FORMAT)",
            Recursive = true,
        };
        logFormat.AcceptOnlyFromAmong("text", "json");
        var root = new RootCommand("Incremental sessionizer: reads new visits from a Delta table, keeps open sessions in persistent actors, writes finished sessions.");
        root.Options.Add(baseDir);
        root.Options.Add(configFile);
        root.Options.Add(logFormat);

        CommandContext Context(ParseResult p, CommandLineOverrides? extra = null) =>
            new(SessionizationConfig.Build((extra ?? new CommandLineOverrides()) with { BaseDirectory = p.GetValue(baseDir), ConfigFile = p.GetValue(configFile), LogFormat = p.GetValue(logFormat) }), Console.Out);

        var newRows = new Command("generate-new-rows", "Append the seed's first rows (users 1,1,2,3 visit page_1..page_4) at the current UTC time, as one commit");
        newRows.SetAction(p => TableCommands.GenerateSeedRowsAsync(Context(p), SeedRows.NewRows, "generate-new-rows"));
        root.Subcommands.Add(newRows);

        var closingRows = new Command("generate-closing-rows", "Append the seed's closing rows (user 3 page_1.html, user 4 page_2.html), as one commit");
        closingRows.SetAction(p => TableCommands.GenerateSeedRowsAsync(Context(p), SeedRows.ClosingRows, "generate-closing-rows"));
        root.Subcommands.Add(closingRows);

        var file = new Argument<string>("FILE") { Description = "CSV file with header user_id,visit_time,page (ISO-8601 times); - reads standard input" };
        var append = new Command("append-visits", "Append visits from a CSV file as one commit; nothing is committed if any row is bad") { file };
        append.SetAction(p => TableCommands.AppendVisitsAsync(Context(p), p.GetValue(file)!));
        root.Subcommands.Add(append);

        var format = new Option<OutputFormat>("--format")
        {
            Description = "Output format: table (Spark's show layout), csv or json",
            DefaultValueFactory = _ => OutputFormat.Table,
            // The default parser's error names the enum's .NET type; this one names the choices.
            CustomParser = result =>
            {
                var text = result.Tokens.Count == 1 ? result.Tokens[0].Value : "";
                if (Enum.TryParse<OutputFormat>(text, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed) && !char.IsDigit(text.FirstOrDefault()))
                    return parsed;
                result.AddError($"--format '{text}' is not table, csv or json");
                return OutputFormat.Table;
            },
        };
        var limit = new Option<int?>("--limit") { Description = "Show at most this many rows per table, in every format (0: all; default 20 in table format, as Spark's show(), and all in csv and json)" };
        limit.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is < 0)
                result.AddError("--limit must be 0 (all rows) or more");
        });
        int Limit(ParseResult p) => p.GetValue(limit) ?? (p.GetValue(format) == OutputFormat.Table ? TableOutput.ShowDefaultRows : 0);

        var readTables = new Command("read-tables", "Print the visits table like Spark's show(truncate=False)") { format, limit };
        readTables.SetAction(p => TableCommands.ReadTablesAsync(Context(p), p.GetValue(format), Limit(p)));
        root.Subcommands.Add(readTables);

        var wide = new Option<bool>("--wide") { Description = "Add start_time, end_time, visit_count (and batch_number for sessions)" };
        var table = new Option<string?>("--table") { Description = "Only this table: pending or sessions (needed for csv, which holds one table per document)" };
        table.AcceptOnlyFromAmong("pending", "sessions");
        var readSessions = new Command("read-session-tables", "Print PENDING SESSIONS and SESSIONS ordered by batch_number, user_id") { format, limit, wide, table };
        readSessions.SetAction(p => TableCommands.ReadSessionTablesAsync(Context(p), p.GetValue(format), p.GetValue(wide), Limit(p), p.GetValue(table)));
        root.Subcommands.Add(readSessions);

        var maxFiles = new Option<int?>("--max-files-per-batch") { Description = "Upper bound on visits-table data files per batch (default 1000)" };
        var provider = new Option<string?>("--provider") { Description = "State store: sqlite (embedded, default) or postgresql" };
        var connection = new Option<string?>("--connection-string") { Description = "PostgreSQL connection string (with --provider postgresql)" };

        var badRows = new Option<string?>("--bad-rows") { Description = "fail (default): a bad visits file or row fails the batch; quarantine: set it aside in the quarantine table and go on" };
        badRows.AcceptOnlyFromAmong("fail", "quarantine");
        var fromBatch = new Option<long?>("--from-batch") { Description = "Rewind to the checkpoint at the start of batch N, take back batches N and later, and process again from there" };
        var endOfInput = new Option<bool>("--end-of-input") { Description = "No more visits will come: after the new visits, close every session still pending (a last batch with no files)" };
        var mode = new Option<string?>("--mode") { Description = "How sessions are cut: batches (the seed's rule, default) or event-time (by visit_time; see README, \"Event-time sessions\")" };
        mode.AcceptOnlyFromAmong("batches", "event-time");
        var gap = new Option<string?>("--gap") { Description = "event-time: a visit this long or longer after the previous one starts a new session (default 30m)" };
        var maxDuration = new Option<string?>("--max-duration") { Description = "event-time: a visit at or after start_time + this starts a new session, e.g. 24h (default off)" };
        var watermarkDelay = new Option<string?>("--watermark-delay") { Description = "event-time: the watermark trails the latest visit_time committed by this (default 0s)" };
        var allowedLateness = new Option<string?>("--allowed-lateness") { Description = "event-time: how far behind the watermark a visit may come and still correct its session (default 0s)" };
        var idleClose = new Option<string?>("--idle-close") { Description = "event-time worker: after this long without a new commit, move the watermark to the wall clock so sessions close (default off)" };
        Option<string?>[] sessionOptions = [mode, gap, maxDuration, watermarkDelay, allowedLateness];

        // Session flags become HOCON overrides, so a flag, a HOCON file and the environment are checked the same way.
        Dictionary<string, string?> SessionFlags(ParseResult p, bool worker = false) =>
            (worker ? sessionOptions.Append(idleClose) : sessionOptions).ToDictionary(o => o.Name.TrimStart('-'), o => p.GetValue(o));

        CommandContext SessionContext(ParseResult p, CommandLineOverrides overrides, bool worker = false)
        {
            var given = SessionFlags(p, worker);
            var context = Context(p, overrides with { Sessions = given });
            SessionizationConfig.CheckEventTimeFlags(given, context.Settings);
            Collector.UseFor(context.Settings.Sessions.Mode);
            return context;
        }

        var demo = new Command("demo", "Run the seed's walkthrough (steps 1-12) in a fresh directory, printing every table; with --mode event-time, the event-time walkthrough")
        {
            mode, gap, maxDuration, watermarkDelay, allowedLateness,
        };
        demo.SetAction((p, ct) => DemoCommand.RunAsync(p.GetValue(baseDir), Console.Out, ct, SessionFlags(p)));
        root.Subcommands.Add(demo);

        var run = new Command("run", "Drain and exit: process everything committed since the last checkpoint as one or more batches")
        {
            maxFiles, fromBatch, endOfInput, badRows, provider, connection, mode, gap, maxDuration, watermarkDelay, allowedLateness,
        };
        run.SetAction((p, ct) => RunCommands.RunAsync(
            SessionContext(p, new CommandLineOverrides(
                MaxFilesPerBatch: p.GetValue(maxFiles), Provider: p.GetValue(provider), ConnectionString: p.GetValue(connection), BadRows: p.GetValue(badRows))),
            ct,
            p.GetValue(fromBatch),
            p.GetValue(endOfInput)));
        root.Subcommands.Add(run);

        var poll = new Option<string?>("--poll-interval") { Description = "How often to look for new commits, e.g. 1s, 500ms, 2m (default 1s)" };
        var metricsPort = new Option<int?>("--metrics-port") { Description = "Serve Prometheus metrics on /metrics and health on /healthz, /readyz at this port (every interface; default off)" };
        metricsPort.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<int?>() is < 1 or > 65535)
                result.AddError("--metrics-port must be a TCP port, 1-65535");
        });
        var worker = new Command("worker", "Long-running: poll for new commits and process them; stops cleanly on SIGINT/SIGTERM")
        {
            maxFiles, poll, badRows, provider, connection, mode, gap, maxDuration, watermarkDelay, allowedLateness, idleClose, metricsPort,
        };
        worker.SetAction((p, ct) => RunCommands.WorkerAsync(
            SessionContext(
                p,
                new CommandLineOverrides(
                MaxFilesPerBatch: p.GetValue(maxFiles),
                PollInterval: ParseInterval(p.GetValue(poll)),
                Provider: p.GetValue(provider),
                ConnectionString: p.GetValue(connection),
                BadRows: p.GetValue(badRows)),
                worker: true),
            ct,
            p.GetValue(metricsPort)));

        var readQuarantine = new Command("read-quarantine", "Print the visits set aside by --bad-rows quarantine, with the reason") { format, limit };
        readQuarantine.SetAction(p => TableCommands.ReadQuarantineAsync(Context(p), p.GetValue(format), Limit(p)));
        root.Subcommands.Add(readQuarantine);
        root.Subcommands.Add(worker);

        var statusFormat = new Option<string>("--format") { Description = "text (default) or json (one document, for scripts and monitors)", DefaultValueFactory = _ => "text" };
        statusFormat.AcceptOnlyFromAmong("text", "json");
        var status = new Command("status", "Show the last committed batch, visits-table versions, pending sessions and retained checkpoints") { provider, connection, statusFormat };
        status.SetAction((p, ct) => RunCommands.StatusAsync(
            Context(p, new CommandLineOverrides(Provider: p.GetValue(provider), ConnectionString: p.GetValue(connection))), ct, json: p.GetValue(statusFormat) == "json"));
        root.Subcommands.Add(status);

        var retain = new Option<string>("--retain")
        {
            Description = "Keep every file a version younger than this needs, e.g. 168h (the default, Delta's), 30d, 0s",
            DefaultValueFactory = _ => "168h",
        };
        var dryRun = new Option<bool>("--dry-run") { Description = "List the files it would delete, and delete none" };
        var vacuum = new Command("vacuum", "Delete the output tables' data files that no version inside the retention needs (time travel within it keeps working)") { retain, dryRun };
        vacuum.SetAction(p => UpkeepCommands.VacuumAsync(Context(p), ParseRetention(p.GetValue(retain)!), p.GetValue(dryRun)));
        root.Subcommands.Add(vacuum);

        var targetSize = new Option<string>("--target-size")
        {
            Description = "Join small files into files of up to this size, e.g. 128MiB (the default), 512KiB, 1GiB",
            DefaultValueFactory = _ => "128MiB",
        };
        var optimize = new Command("optimize", "Compact the session tables' small per-batch files into larger ones (batches a rewind can still take back stay as they are)") { provider, connection, targetSize };
        optimize.SetAction((p, ct) => UpkeepCommands.OptimizeAsync(
            Context(p, new CommandLineOverrides(Provider: p.GetValue(provider), ConnectionString: p.GetValue(connection))), ParseSize(p.GetValue(targetSize)!), ct));
        root.Subcommands.Add(optimize);

        var reportOut = new Option<string>("--out") { Description = "The HTML file to write", Required = true };
        var report = new Command("report", "Write one self-contained HTML page of charts: sessions per hour, session duration, pages per session, batch duration and lag") { reportOut };
        report.SetAction((p, ct) => ReportCommand.RunAsync(Context(p), p.GetValue(reportOut)!, ct));
        root.Subcommands.Add(report);

        var users = new Option<long>("--users") { Description = "Number of distinct users (ids 1..U)", Required = true };
        var visits = new Option<long>("--visits") { Description = "Number of visits in all", Required = true };
        var commits = new Option<int>("--commits") { Description = "Number of commits to spread them over", DefaultValueFactory = _ => 1 };
        var seed = new Option<ulong>("--seed") { Description = "Random seed; the same seed gives the same visits", DefaultValueFactory = _ => 1 };
        var start = new Option<DateTimeOffset>("--start")
        {
            Description = "UTC time of the first commit's hour (default 2026-01-01T00:00:00Z)",
            DefaultValueFactory = _ => SyntheticVisits.DefaultStart,
        };
        var generate = new Command("generate", "Append synthetic visits: N visits over U users in C commits, deterministic for a seed") { users, visits, commits, seed, start };
        generate.SetAction(p => TableCommands.GenerateAsync(Context(p), p.GetValue(users), p.GetValue(visits), p.GetValue(commits), p.GetValue(seed), p.GetValue(start)));
        root.Subcommands.Add(generate);

        var kills = new Option<int>("--kills") { Description = "How many times to SIGKILL a run or worker (at least 50 for the long form)", DefaultValueFactory = _ => 50 };
        var crashUsers = new Option<int>("--users") { Description = "Distinct users in the workload", DefaultValueFactory = _ => 5000 };
        var perCommit = new Option<int>("--visits-per-commit") { Description = "Visits in each generated commit", DefaultValueFactory = _ => 2000 };
        var crashSeed = new Option<int>("--seed") { Description = "Seed for the workload and the kill schedule", DefaultValueFactory = _ => 1 };
        var crashMode = new Option<string>("--mode")
        {
            Description = "Session mode to prove it in: batches (default) or event-time (gap 30m, allowed lateness 30m, with late visits and corrections)",
            DefaultValueFactory = _ => "batches",
        };
        crashMode.AcceptOnlyFromAmong("batches", "event-time");
        var crashTest = new Command("crash-test", "Prove exactly-once: kill run/worker processes with SIGKILL at random moments and compare all tables with an uninterrupted reference")
        {
            kills, crashUsers, perCommit, crashSeed, crashMode,
        };
        crashTest.SetAction(p => CrashTestCommand.RunAsync(
            p.GetValue(baseDir), p.GetValue(kills), p.GetValue(crashUsers), p.GetValue(perCommit), p.GetValue(crashSeed), Console.Out, Domain.SessionRules.ParseMode(p.GetValue(crashMode)!)!.Value));
        root.Subcommands.Add(crashTest);

        return root;
    }

    private static TimeSpan ParseRetention(string text) =>
        Domain.Durations.TryParseMicros(text) is { } micros
            ? TimeSpan.FromMicroseconds(micros)
            : throw new UserFacingException($"--retain '{text}' is not a duration like 168h, 30d or 0s");

    private static long ParseSize(string text) =>
        Persistence.Tables.Compaction.TryParseSize(text) ?? throw new UserFacingException($"--target-size '{text}' is not {Persistence.Tables.Compaction.SizeExamples}");

    private static TimeSpan? ParseInterval(string? text)
    {
        if (text is null)
            return null;
        var t = text.Trim();
        (string Suffix, double Millis)[] units = [("ms", 1), ("s", 1000), ("m", 60_000)];
        foreach (var (suffix, millis) in units)
            if (t.EndsWith(suffix, StringComparison.Ordinal) && double.TryParse(t[..^suffix.Length], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n > 0)
                return TimeSpan.FromMilliseconds(n * millis);
        throw new UserFacingException($"--poll-interval '{text}' is not a duration like 500ms, 1s or 2m");
    }
}

using Sessionization.Host.Configuration;
using Sessionization.Host.Input;
using Sessionization.Host.Output;
using Sessionization.Host.Runtime;

namespace Sessionization.Host.Commands;

/// <summary>The seed's walkthrough, steps 1 to 12, in a fresh directory, each step printed as it runs.</summary>
public static class DemoCommand
{
    public static async Task<int> RunAsync(string? baseDirectory, TextWriter output, CancellationToken cancellationToken, IReadOnlyDictionary<string, string?>? sessions = null)
    {
        var directory = Path.GetFullPath(baseDirectory ?? Path.Combine(Path.GetTempPath(), $"sessionization-demo-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}"));
        // The settings are checked before anything is created.
        var context = new CommandContext(SessionizationConfig.Build(new CommandLineOverrides(BaseDirectory: directory, Sessions: sessions)), output) { ShowsProgress = false };
        SessionizationConfig.CheckEventTimeFlags(sessions ?? new Dictionary<string, string?>(), context.Settings);
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
            throw new UserFacingException($"demo needs a fresh directory, and {directory} is not empty");
        Directory.CreateDirectory(directory);
        if (context.Settings.Sessions.Mode == Domain.SessionMode.EventTime)
            return await EventTimeAsync(context, directory, output, cancellationToken);

        async Task Step(string title, Func<Task<int>> action)
        {
            output.WriteLine($"$ ./sessionize {title}");
            await action();
            output.WriteLine();
        }

        output.WriteLine($"1. setting up a fresh base directory: {directory}");
        output.WriteLine();
        output.WriteLine("2. generate the first set of rows");
        await Step("generate-new-rows", () => TableCommands.GenerateSeedRowsAsync(context, SeedRows.NewRows, "generate-new-rows"));
        output.WriteLine("3. the visits are in the table");
        await Step("read-tables", () => TableCommands.ReadTablesAsync(context, OutputFormat.Table, 0));
        // The seed's step 4 explains its job; ours says the same of the sessionizer, so the numbers run on as in the seed.
        output.WriteLine("4. how the sessionizer works: each run reads the visits committed since its last checkpoint as one batch;");
        output.WriteLine("   a user's session stays pending while the user has visits in the next batch, and is written to sessions");
        output.WriteLine("   in the first batch without one; every batch writes the sessions still pending, with its batch number,");
        output.WriteLine("   to pending_sessions");
        output.WriteLine();
        output.WriteLine("5. run the sessionizer: batch 0");
        await Step("run", () => RunCommands.RunAsync(context, cancellationToken));
        output.WriteLine("6. three pending sessions, no completed ones");
        await Step("read-session-tables", () => TableCommands.ReadSessionTablesAsync(context, OutputFormat.Table, false, 0));
        output.WriteLine("7. generate new rows");
        await Step("generate-new-rows", () => TableCommands.GenerateSeedRowsAsync(context, SeedRows.NewRows, "generate-new-rows"));
        output.WriteLine("8. run the sessionizer: batch 1");
        await Step("run", () => RunCommands.RunAsync(context, cancellationToken));
        output.WriteLine("9. the three sessions are extended");
        await Step("read-session-tables", () => TableCommands.ReadSessionTablesAsync(context, OutputFormat.Table, false, 0));
        output.WriteLine("10. generate the closing rows");
        await Step("generate-closing-rows", () => TableCommands.GenerateSeedRowsAsync(context, SeedRows.ClosingRows, "generate-closing-rows"));
        output.WriteLine("11. run the sessionizer: batch 2");
        await Step("run", () => RunCommands.RunAsync(context, cancellationToken));
        output.WriteLine("12. users 1 and 2 close; user 3 extends; user 4 starts");
        await Step("read-session-tables", () => TableCommands.ReadSessionTablesAsync(context, OutputFormat.Table, false, 0));
        output.WriteLine($"The tables are in {directory}; run more commands against it with --base-dir {directory}");
        return 0;
    }

    /// <summary>The visits of the event-time walkthrough, three commits; the comments say what each shows under the default settings.</summary>
    private static readonly string[] EventTimeCommits =
    [
        // User 1's first two visits are 10 minutes apart: one session.
        "user_id,visit_time,page\n1,2026-01-01T10:00:00Z,page_1.html\n1,2026-01-01T10:10:00Z,page_2.html\n2,2026-01-01T10:05:00Z,page_3.html\n",
        // 40 minutes later user 1 starts a new session; the watermark moves to 11:00, so sessions that ended before 10:30 close.
        "user_id,visit_time,page\n1,2026-01-01T10:50:00Z,page_4.html\n2,2026-01-01T11:00:00Z,page_5.html\n",
        // 10:35 is behind the watermark but less than a gap behind it: it joins user 1's visits and bridges the written
        // session with the open one. 09:00 is two hours behind: late. 11:45 moves the watermark on.
        "user_id,visit_time,page\n1,2026-01-01T10:35:00Z,page_6.html\n3,2026-01-01T09:00:00Z,page_7.html\n4,2026-01-01T11:45:00Z,page_8.html\n",
    ];

    private static async Task<int> EventTimeAsync(CommandContext context, string directory, TextWriter output, CancellationToken cancellationToken)
    {
        var rules = context.Settings.Sessions;
        var flags = rules.Flags();
        var step = 0;
        void Say(string text) => output.WriteLine($"{++step}. {text}");
        async Task Show(string title, Func<Task<int>> action)
        {
            output.WriteLine($"$ ./sessionize {title}");
            await action();
            output.WriteLine();
        }

        async Task Append(int commit)
        {
            var file = Path.Combine(directory, "input", $"visits-{commit + 1}.csv");
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            await File.WriteAllTextAsync(file, EventTimeCommits[commit], cancellationToken);
            output.WriteLine($"$ cat input/visits-{commit + 1}.csv");
            output.Write(EventTimeCommits[commit]);
            await Show($"append-visits input/visits-{commit + 1}.csv", () => TableCommands.AppendVisitsAsync(context, file));
        }

        Task<int> Tables() => TableCommands.ReadSessionTablesAsync(context, OutputFormat.Table, wide: true, 0);

        Say($"event-time sessions in a fresh base directory: {directory}");
        output.WriteLine($"   settings: {flags}");
        output.WriteLine();
        Say("two commits of visits: user 1 at 10:00, 10:10 and 10:50; user 2 at 10:05 and 11:00");
        await Append(0);
        await Append(1);
        Say("run: the gap splits user 1's visits into two sessions; those that ended a gap before the watermark (11:00) are written");
        await Show($"run {flags}", () => RunCommands.RunAsync(context, cancellationToken));
        await Show("read-session-tables --wide", Tables);
        Say("a commit with a visit behind the watermark, one far behind it, and one that moves the watermark on");
        await Append(2);
        Say("run: 10:35 bridges user 1's written session and its open one, so the written row is corrected in place; 09:00 is late");
        await Show($"run {flags}", () => RunCommands.RunAsync(context, cancellationToken));
        await Show("read-session-tables --wide", Tables);
        Say("the late visit is not lost: it is in quarantine with the watermark it missed");
        await Show("read-quarantine", () => TableCommands.ReadQuarantineAsync(context, OutputFormat.Table, 0));
        Say("no more visits will come: the end of input closes the sessions still open");
        await Show($"run {flags} --end-of-input", () => RunCommands.RunAsync(context, cancellationToken, endOfInput: true));
        await Show("read-session-tables --wide", Tables);
        output.WriteLine($"The tables are in {directory}; run more commands against it with --base-dir {directory} {flags}");
        return 0;
    }
}

using Sessionization.Host.Configuration;
using Sessionization.Host.Input;
using Sessionization.Host.Output;
using Sessionization.Host.Runtime;

namespace Sessionization.Host.Commands;

/// <summary>The seed's walkthrough, steps 1 to 12, in a fresh directory, each step printed as it runs.</summary>
public static class DemoCommand
{
    public static async Task<int> RunAsync(string? baseDirectory, TextWriter output, CancellationToken cancellationToken)
    {
        var directory = Path.GetFullPath(baseDirectory ?? Path.Combine(Path.GetTempPath(), $"sessionization-demo-{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Environment.ProcessId}"));
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
            throw new UserFacingException($"demo needs a fresh directory, and {directory} is not empty");
        Directory.CreateDirectory(directory);
        var context = new CommandContext(SessionizationConfig.Build(new CommandLineOverrides(BaseDirectory: directory)), output);

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
}

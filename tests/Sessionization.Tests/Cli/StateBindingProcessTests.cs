using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Cli;

/// <summary>
/// The state is bound to its tables: a state that is lost, someone else's, older or newer than the tables is never
/// used silently. The run is refused with one line saying what does not match and what to do, and what it says to
/// do works.
/// </summary>
public sealed class StateBindingProcessTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task Deleted_state_is_refused_and_rebuilding_from_the_visits_gives_the_tables_a_fresh_run_gives()
    {
        var data = _temp.Combine("data");
        SessionizeProcess.Ok(data, "generate", "--users", "30", "--visits", "600", "--commits", "3", "--seed", "5");
        SessionizeProcess.Ok(data, "run");
        Directory.Delete(Path.Combine(data, "state"), recursive: true);
        SessionizeProcess.Ok(data, "generate", "--users", "30", "--visits", "300", "--commits", "2", "--seed", "6", "--start", "2026-01-01T03:00:00Z");
        var tablesBefore = Snapshot(data);

        var refused = SessionizeProcess.Run(data, "run");

        Assert.Equal(1, refused.ExitCode);
        var line = Assert.Single(refused.Err.TrimEnd('\n').Split('\n'));
        Assert.Contains("the state has no record of the batches 0..0 that pending_sessions holds", line);
        Assert.Contains("--from-batch 0", line);
        Assert.Equal(tablesBefore, Snapshot(data));

        var rebuilt = SessionizeProcess.Ok(data, "run", "--from-batch", "0").Out;
        Assert.Contains("rewound to the checkpoint at the start of batch 0: took back 1 batch", rebuilt);

        // The same visits in a fresh base directory, one run: the same sessions.
        var reference = _temp.Combine("reference");
        SessionizeProcess.Ok(reference, "generate", "--users", "30", "--visits", "600", "--commits", "3", "--seed", "5");
        SessionizeProcess.Ok(reference, "generate", "--users", "30", "--visits", "300", "--commits", "2", "--seed", "6", "--start", "2026-01-01T03:00:00Z");
        SessionizeProcess.Ok(reference, "run");
        Assert.Equal(await RowsAsync(reference), await RowsAsync(data));
        Assert.Contains("state and tables:       agree", SessionizeProcess.Ok(data, "status").Out);
    }

    [Fact]
    public void State_from_another_base_directory_is_refused_and_changes_nothing()
    {
        var a = _temp.Combine("a");
        var b = _temp.Combine("b");
        SessionizeProcess.Ok(a, "generate", "--users", "10", "--visits", "100", "--commits", "2", "--seed", "1");
        SessionizeProcess.Ok(a, "run", "--max-files-per-batch", "1");
        SessionizeProcess.Ok(b, "generate", "--users", "10", "--visits", "100", "--commits", "1", "--seed", "2");
        SessionizeProcess.Ok(b, "run");
        Directory.Delete(Path.Combine(b, "state"), recursive: true);
        RepositoryPaths.Copy(Path.Combine(a, "state"), Path.Combine(b, "state"));
        SessionizeProcess.Ok(b, "generate", "--users", "10", "--visits", "100", "--commits", "1", "--seed", "3", "--start", "2026-01-02T00:00:00Z");
        var tablesBefore = Snapshot(b);

        var refused = SessionizeProcess.Run(b, "run");

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("the state has no record of the batches 0..0 that pending_sessions holds", Assert.Single(refused.Err.TrimEnd('\n').Split('\n')));
        Assert.Equal(tablesBefore, Snapshot(b));
        var status = SessionizeProcess.Run(b, "status");
        Assert.Equal(1, status.ExitCode);
        Assert.Contains("state and tables:       the state has no record", status.Out);
    }

    [Fact]
    public async Task Two_base_directories_on_one_copied_state_database_stay_apart()
    {
        var a = _temp.Combine("a");
        var b = _temp.Combine("b");
        var reference = _temp.Combine("reference");
        SessionizeProcess.Ok(a, "generate", "--users", "10", "--visits", "200", "--commits", "2", "--seed", "1");
        SessionizeProcess.Ok(a, "run");
        // b starts with a copy of a's state database and visits of its own.
        RepositoryPaths.Copy(Path.Combine(a, "state"), Path.Combine(b, "state"));
        foreach (var dir in new[] { b, reference })
            SessionizeProcess.Ok(dir, "generate", "--users", "10", "--visits", "200", "--commits", "2", "--seed", "9");

        var run = SessionizeProcess.Ok(b, "run").Out;
        SessionizeProcess.Ok(reference, "run");

        Assert.StartsWith("batch 0: 2 files", run);
        Assert.Equal(await RowsAsync(reference), await RowsAsync(b));
        var aBefore = await RowsAsync(a);
        SessionizeProcess.Ok(a, "generate", "--users", "10", "--visits", "50", "--commits", "1", "--seed", "4", "--start", "2026-01-01T01:00:00Z");
        Assert.StartsWith("batch 1: 1 file", SessionizeProcess.Ok(a, "run").Out);
        Assert.NotEqual(aBefore, await RowsAsync(a));
        Assert.NotEqual(
            SessionTable.Pending(a).Log.Pipeline()!.PipelineId,
            SessionTable.Pending(b).Log.Pipeline()!.PipelineId);
    }

    [Fact]
    public void A_replaced_visits_table_is_refused_by_its_id_and_a_worker_refuses_a_lost_state_too()
    {
        var data = _temp.Combine("data");
        SessionizeProcess.Ok(data, "generate-new-rows");
        SessionizeProcess.Ok(data, "run");
        Directory.Delete(Path.Combine(data, "visits_table"), recursive: true);
        SessionizeProcess.Ok(data, "generate-new-rows");

        var replaced = SessionizeProcess.Run(data, "run");
        Assert.Equal(1, replaced.ExitCode);
        Assert.Contains("visits_table: the table was replaced", Assert.Single(replaced.Err.TrimEnd('\n').Split('\n')));

        var other = _temp.Combine("other");
        SessionizeProcess.Ok(other, "generate-new-rows");
        SessionizeProcess.Ok(other, "run");
        Directory.Delete(Path.Combine(other, "state"), recursive: true);
        // The worker stops at once with the same one line, instead of polling with a state that is not its tables'.
        var worker = SessionizeProcess.Run(other, "worker");
        Assert.Equal(1, worker.ExitCode);
        Assert.Contains("the state has no record of the batches 0..0 that pending_sessions holds", worker.Err);
    }

    [Fact]
    public void Tables_older_than_the_state_are_refused_and_the_rewind_it_names_brings_them_together()
    {
        var data = _temp.Combine("data");
        var backup = _temp.Combine("backup");
        SessionizeProcess.Ok(data, "generate", "--users", "10", "--visits", "100", "--commits", "2", "--seed", "1");
        SessionizeProcess.Ok(data, "run", "--max-files-per-batch", "1");
        foreach (var table in new[] { "sessions", "pending_sessions" })
            RepositoryPaths.Copy(Path.Combine(data, table), Path.Combine(backup, table));
        SessionizeProcess.Ok(data, "generate", "--users", "10", "--visits", "100", "--commits", "1", "--seed", "2", "--start", "2026-01-01T02:00:00Z");
        SessionizeProcess.Ok(data, "run");
        // The tables are put back from a backup taken before batch 2.
        foreach (var table in new[] { "sessions", "pending_sessions" })
        {
            Directory.Delete(Path.Combine(data, table), recursive: true);
            RepositoryPaths.Copy(Path.Combine(backup, table), Path.Combine(data, table));
        }

        var refused = SessionizeProcess.Run(data, "run");

        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("pending_sessions holds batches through 1 but the state through 2", refused.Err);
        Assert.Contains("--from-batch 2", refused.Err);
        var rewound = SessionizeProcess.Ok(data, "run", "--from-batch", "2").Out;
        Assert.Contains("batch 2: 1 file", rewound);
        Assert.Contains("state and tables:       agree", SessionizeProcess.Ok(data, "status").Out);
    }

    private static async Task<List<string>> RowsAsync(string baseDirectory) =>
        [.. (await SessionTable.Completed(baseDirectory).ReadAllAsync()).Select(r => "S " + (r with { BatchNumber = 0 }))
            .Concat((await SessionTable.Pending(baseDirectory).ReadAllAsync()).Select(r => "P " + (r with { BatchNumber = 0 })))
            .Order(StringComparer.Ordinal)];

    /// <summary>Every file of the output tables with its length: what a refused run must leave as it was.</summary>
    private static List<string> Snapshot(string baseDirectory) =>
        [.. new[] { "sessions", "pending_sessions", "quarantine" }
            .Select(t => Path.Combine(baseDirectory, t))
            .Where(Directory.Exists)
            .SelectMany(d => Directory.GetFiles(d, "*", SearchOption.AllDirectories))
            .Select(f => $"{Path.GetRelativePath(baseDirectory, f)} {new FileInfo(f).Length}")
            .Order(StringComparer.Ordinal)];
}

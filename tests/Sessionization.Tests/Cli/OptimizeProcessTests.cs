using DuckDB.NET.Data;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Cli;

/// <summary>
/// <c>optimize</c> on real tables: the rows stay, the files get fewer, older versions still read inside the
/// retention, DuckDB reads the compacted files, and a rewind to the oldest retained checkpoint after a vacuum
/// gives the same tables.
/// </summary>
public sealed class OptimizeProcessTests : IDisposable
{
    private static readonly Dictionary<string, string> RetainThree = new() { ["SESSIONIZATION_CHECKPOINTS_RETAIN"] = "3" };

    private readonly TempDirectory _temp = new();

    private string Data => _temp.Combine("data");

    public void Dispose() => _temp.Dispose();

    private CliResult Sessionize(params string[] args)
    {
        var result = SessionizeProcess.RunWith(Data, null, RetainThree, args);
        Assert.True(result.ExitCode == 0, $"sessionize {string.Join(' ', args)} failed:\n{result}");
        return result;
    }

    private static List<string> Rows(IEnumerable<SessionRecord> rows) =>
        [.. rows.Select(r => r.ToString()).Order(StringComparer.Ordinal)];

    private static List<string> RowsFromDuckDb(string table)
    {
        using var duck = new DuckDBConnection("Data Source=:memory:");
        duck.Open();
        using var command = duck.CreateCommand();
        command.CommandText = $"SET VARIABLE live = ({OutsideReaderTests.LiveFilesSql(table)}); " +
            "SELECT user_id, concatenated_pages, batch_number, epoch_us(start_time), epoch_us(end_time), visit_count FROM read_parquet(getvariable('live'))";
        var rows = new List<SessionRecord>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                rows.Add(new SessionRecord(reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4), reader.GetInt64(5)));
            }
        }

        return Rows(rows);
    }

    [Fact]
    public async Task Optimize_keeps_every_row_in_fewer_files_old_versions_read_and_a_rewind_after_a_vacuum_gives_the_same_tables()
    {
        Sessionize("generate", "--users", "50", "--visits", "1200", "--commits", "12", "--seed", "2");
        Sessionize("run", "--max-files-per-batch", "1");
        var pending = SessionTable.Pending(Data);
        var completed = SessionTable.Completed(Data);
        var before = (Pending: Rows(await pending.ReadAllAsync()), Sessions: Rows(await completed.ReadAllAsync()));
        var versionBefore = pending.Delta.LatestVersion()!.Value;
        var filesBefore = pending.Delta.LoadSnapshot().Files.Count;

        Assert.Matches(@"table files: +pending_sessions 12 \([\d.]+ KiB\), sessions \d+ \([\d.]+ KiB\); optimize would join \d+ of them into 2\n", Sessionize("status").Out);

        var output = Sessionize("optimize").Out;
        // Three checkpoints are kept: batches 9..11 can still be rewound to, so only the files of 0..8 are joined.
        Assert.Contains("optimize: compacting files of batches 0..8 into files of up to 128.0 MiB; batches 9.. can still be rewound to", output);
        Assert.Matches(@"pending_sessions: joined 9 files \([\d.]+ KiB\) into 1 \([\d.]+ KiB; batches 0\.\.8\) as version 13", output);
        Assert.Matches(@"sessions: joined \d+ files .* into 1 .* as version 13", output);

        Assert.Equal(filesBefore - 8, pending.Delta.LoadSnapshot().Files.Count);
        Assert.Equal(before.Pending, Rows(await pending.ReadAllAsync()));
        Assert.Equal(before.Sessions, Rows(await completed.ReadAllAsync()));
        Assert.Equal(before.Sessions, RowsFromDuckDb(Path.Combine(Data, "sessions")));
        Assert.Equal(before.Pending, RowsFromDuckDb(Path.Combine(Data, "pending_sessions")));
        var status = Sessionize("status").Out;
        Assert.Contains("state and tables:       agree", status);
        Assert.Matches(@"table files: +pending_sessions 4 \([\d.]+ KiB\), sessions \d+ \([\d.]+ KiB\); nothing for optimize to join\n", status);

        // Time travel inside the retention: the version before the compaction reads from the small files.
        Sessionize("vacuum", "--retain", "168h");
        Assert.Equal(before.Pending, Rows(await pending.ReadAllAsync(versionBefore)));

        // A second optimize finds nothing new; a vacuum with no retention then deletes the small files.
        Assert.Contains("pending_sessions: nothing to compact", Sessionize("optimize").Out);
        Assert.Matches(@"pending_sessions: deleted 9 files", Sessionize("vacuum", "--retain", "0s").Out);

        // The oldest retained checkpoint can still be rewound to: batches 9..11 run again over the same files.
        Assert.StartsWith("rewound to the checkpoint at the start of batch 9: took back 3 batches", Sessionize("run", "--from-batch", "9", "--max-files-per-batch", "1").Out);
        Assert.Equal(before.Pending, Rows(await pending.ReadAllAsync()));
        Assert.Equal(before.Sessions, Rows(await completed.ReadAllAsync()));
        Assert.Equal(before.Sessions, RowsFromDuckDb(Path.Combine(Data, "sessions")));

        Sessionize("generate", "--users", "50", "--visits", "100", "--seed", "3");
        Assert.StartsWith("batch 12:", Sessionize("run").Out);
        Assert.Contains("state and tables:       agree", Sessionize("status").Out);
    }

    [Fact]
    public void Optimize_leaves_rewindable_batches_alone_is_refused_while_a_coordinator_runs_and_names_a_bad_size()
    {
        var missing = SessionizeProcess.Run(Data, "optimize");
        Assert.Equal(1, missing.ExitCode);
        Assert.Equal($"sessionize: base directory {Data} does not exist (set --base-dir, or run generate-new-rows first)\n", missing.Err);

        SessionizeProcess.Ok(Data, "generate-new-rows");
        var nothing = SessionizeProcess.Run(Data, "optimize");
        Assert.Equal(1, nothing.ExitCode);
        Assert.Equal($"sessionize: no output tables in {Data} (run has not committed a batch yet)\n", nothing.Err);

        SessionizeProcess.Ok(Data, "run");
        SessionizeProcess.Ok(Data, "generate-new-rows");
        SessionizeProcess.Ok(Data, "run");
        // The default keeps 100 checkpoints: both batches can still be rewound to, so their files stay.
        Assert.Equal(
            "optimize: nothing to compact: every batch (0..1) can still be rewound to; lower sessionization.checkpoints.retain to compact older ones\n",
            SessionizeProcess.Ok(Data, "optimize").Out);

        var refused = RunningWorker.RunWhileAWorkerPolls(Data, "optimize");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("another coordinator is active on", refused.Err);

        var bad = SessionizeProcess.Run(Data, "optimize", "--target-size", "big");
        Assert.Equal(1, bad.ExitCode);
        Assert.Equal("sessionize: --target-size 'big' is not a size like 128MiB, 512KiB or 1GiB\n", bad.Err);
    }

    [Fact]
    public async Task A_run_with_optimize_every_compacts_between_batches_and_gives_the_tables_of_a_run_without()
    {
        var plain = _temp.Combine("plain");
        var upkeep = new Dictionary<string, string> { ["SESSIONIZATION_CHECKPOINTS_RETAIN"] = "2", ["SESSIONIZATION_TABLES_OPTIMIZE_EVERY"] = "4" };
        foreach (var dir in new[] { Data, plain })
            SessionizeProcess.Ok(dir, "generate", "--users", "40", "--visits", "1200", "--commits", "12", "--seed", "5");

        var compacting = SessionizeProcess.RunWith(Data, null, upkeep, "run", "--max-files-per-batch", "1");
        SessionizeProcess.Ok(plain, "run", "--max-files-per-batch", "1");

        Assert.True(compacting.ExitCode == 0, compacting.ToString());
        var lines = compacting.Out.Split('\n');
        // After batches 3, 7 and 11, with two checkpoints kept: batches 0..1, then 2..5, then 6..9 are compacted.
        Assert.Equal(
            ["compacted the files of batches 0..1", "compacted the files of batches 0..5", "compacted the files of batches 0..9"],
            lines.Where(l => l.StartsWith("compacted", StringComparison.Ordinal)).Select(l => l[..l.IndexOf(':', StringComparison.Ordinal)]));
        Assert.StartsWith("batch 4:", lines[Array.FindIndex(lines, l => l.StartsWith("compacted the files of batches 0..1", StringComparison.Ordinal)) + 1]);
        Assert.Contains("run: 12 batches committed", compacting.Out);

        foreach (var (compacted, reference) in new[] { (SessionTable.Pending(Data), SessionTable.Pending(plain)), (SessionTable.Completed(Data), SessionTable.Completed(plain)) })
        {
            Assert.Equal(Rows(await reference.ReadAllAsync()), Rows(await compacted.ReadAllAsync()));
            Assert.True(compacted.Delta.LoadSnapshot().Files.Count < reference.Delta.LoadSnapshot().Files.Count);
        }

        Assert.Equal(Rows(await SessionTable.Completed(plain).ReadAllAsync()), RowsFromDuckDb(Path.Combine(Data, "sessions")));
        Assert.Contains("state and tables:       agree", SessionizeProcess.Ok(Data, "status").Out);
    }

    [Fact]
    public void A_worker_with_optimize_every_compacts_its_own_tables_between_batches()
    {
        var config = _temp.Combine("upkeep.conf");
        File.WriteAllText(config, "sessionization { checkpoints.retain = 2, tables.optimize-every = 4 }\n");
        SessionizeProcess.Ok(Data, "generate", "--users", "30", "--visits", "800", "--commits", "8", "--seed", "9");

        using (var worker = new RunningWorker(Data, "--max-files-per-batch", "1", "--config", config))
        {
            worker.WaitFor("batch 3:");
            Assert.StartsWith("compacted the files of batches 0..1: pending_sessions: joined 2 files", worker.WaitFor("compacted"));
            worker.WaitFor("batch 7:");
            Assert.StartsWith("compacted the files of batches 0..5: pending_sessions: joined", worker.WaitFor("compacted"));
            worker.Signal("TERM");
            worker.Process.WaitForExit();
        }

        Assert.Contains("state and tables:       agree", SessionizeProcess.Ok(Data, "status").Out);
    }
}

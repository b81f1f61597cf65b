namespace Sessionization.Tests.Cli;

/// <summary><c>run --from-batch N</c>: rewind to a retained checkpoint, take back later output, process again.</summary>
public sealed class RewindProcessTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private string Data => _temp.Combine("data");

    private string Tables() =>
        SessionizeProcess.Ok(Data, "read-session-tables", "--wide", "--format", "json").Out;

    [Fact]
    public void Rewinding_to_a_retained_batch_takes_back_later_output_and_reprocessing_gives_the_same_tables()
    {
        SessionizeProcess.Ok(Data, "generate", "--users", "150", "--visits", "3000", "--commits", "6", "--seed", "5");
        Assert.Contains("run: 3 batches committed", SessionizeProcess.Ok(Data, "run", "--max-files-per-batch", "2").Out);
        SessionizeProcess.Ok(Data, "generate", "--users", "150", "--visits", "500", "--commits", "1", "--seed", "6", "--start", "2026-01-02T00:00:00Z");
        Assert.Contains("run: 1 batch committed", SessionizeProcess.Ok(Data, "run", "--max-files-per-batch", "2").Out);
        var original = Tables();

        var rewound = SessionizeProcess.Ok(Data, "run", "--from-batch", "1", "--max-files-per-batch", "2").Out.TrimEnd('\n').Split('\n');
        Assert.Matches(@"^rewound to the checkpoint at the start of batch 1: took back 3 batches, reset \d+ user sessions$", rewound[0]);
        Assert.StartsWith("batch 1: 2 files (visits_table v2..v3)", rewound[1]);
        Assert.StartsWith("batch 2: 2 files (visits_table v4..v5)", rewound[2]);
        Assert.StartsWith("batch 3: 1 file (visits_table v6..v6)", rewound[3]);
        Assert.Equal("run: 3 batches committed", rewound[4]);
        Assert.Equal(original, Tables());

        Assert.Contains("run: 4 batches committed", SessionizeProcess.Ok(Data, "run", "--from-batch", "0", "--max-files-per-batch", "2").Out);
        Assert.Equal(original, Tables());
        Assert.Contains("retained checkpoints:   4 (start of batches 0..3)", SessionizeProcess.Ok(Data, "status").Out);
    }

    [Fact]
    public void Readers_of_the_table_see_it_as_it_was_before_the_rewound_batches()
    {
        SessionizeProcess.Ok(Data, "generate", "--users", "30", "--visits", "200", "--commits", "2", "--seed", "1");
        SessionizeProcess.Ok(Data, "run", "--max-files-per-batch", "1");
        var original = Tables();

        // Batch 1's visits file goes missing, so reprocessing after the rewind fails: the tables stay rewound.
        var commit1 = File.ReadAllText(Path.Combine(Data, "visits_table", "_delta_log", "00000000000000000001.json"));
        var second = Directory.GetFiles(Path.Combine(Data, "visits_table"), "*.parquet").Single(f => commit1.Contains(Path.GetFileName(f), StringComparison.Ordinal));
        File.Move(second, second + ".away");
        var failed = SessionizeProcess.Run(Data, "run", "--from-batch", "1", "--max-files-per-batch", "1");
        Assert.Equal(1, failed.ExitCode);
        Assert.Contains("data file is missing", failed.Err);

        var json = System.Text.Json.Nodes.JsonNode.Parse(SessionizeProcess.Ok(Data, "read-session-tables", "--format", "json", "--wide").Out)!;
        Assert.NotEmpty(json["pending_sessions"]!.AsArray());
        Assert.All(json["pending_sessions"]!.AsArray(), r => Assert.Equal(0, (long)r!["batch_number"]!));
        Assert.Empty(json["sessions"]!.AsArray());

        File.Move(second + ".away", second);
        SessionizeProcess.Ok(Data, "run", "--max-files-per-batch", "1");
        Assert.Equal(original, Tables());
    }

    [Fact]
    public void A_batch_that_is_no_longer_retained_is_refused_with_the_retained_ones_listed()
    {
        var config = _temp.Combine("retain.conf");
        File.WriteAllText(config, "sessionization.checkpoints.retain = 2\n");
        SessionizeProcess.Ok(Data, "generate", "--users", "10", "--visits", "50", "--commits", "5");
        SessionizeProcess.Ok(Data, "run", "--config", config, "--max-files-per-batch", "1");

        var old = SessionizeProcess.Run(Data, "run", "--config", config, "--from-batch", "1");
        Assert.Equal(1, old.ExitCode);
        Assert.Equal("sessionize: batch 1 is no longer retained; retained checkpoints: batches 3..4\n", old.Err);

        var future = SessionizeProcess.Run(Data, "run", "--config", config, "--from-batch", "9");
        Assert.Equal(1, future.ExitCode);
        Assert.Equal("sessionize: batch 9 has not been committed yet (the next batch is 5)\n", future.Err);

        Assert.Contains("retained checkpoints:   2 (start of batches 3..4)", SessionizeProcess.Ok(Data, "status", "--config", config).Out);
        Assert.Contains("took back 2 batches", SessionizeProcess.Ok(Data, "run", "--config", config, "--from-batch", "3", "--max-files-per-batch", "1").Out);
    }

    public void Dispose() => _temp.Dispose();
}

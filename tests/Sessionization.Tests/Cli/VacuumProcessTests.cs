using Sessionization.Domain;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Cli;

/// <summary><c>vacuum --retain</c> on real tables: what a version inside the retention needs stays, the rest goes.</summary>
public sealed class VacuumProcessTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private string Data => _temp.Combine("data");

    private string Sessions => Path.Combine(Data, "pending_sessions");

    /// <summary>Three batches, then a rewind to batch 1 that processes them again: batches 1 and 2's first pending files are removed.</summary>
    private async Task<(long Version, List<SessionRecord> Rows)> TablesWithRemovedFilesAsync()
    {
        for (var seed = 1; seed <= 3; seed++)
        {
            SessionizeProcess.Ok(Data, "generate", "--users", "50", "--visits", "300", "--seed", seed.ToString(System.Globalization.CultureInfo.InvariantCulture));
            SessionizeProcess.Ok(Data, "run");
        }

        var table = SessionTable.Pending(Data);
        var before = (table.Delta.LatestVersion()!.Value, await table.ReadAllAsync());
        var rewound = SessionizeProcess.Ok(Data, "run", "--from-batch", "1").Out;
        // Akka's shutdown notices stay out of the command's output.
        Assert.DoesNotContain("[INFO]", rewound);
        return before;
    }

    [Fact]
    public async Task Inside_the_retention_every_version_still_reads_and_a_stray_file_older_than_it_goes()
    {
        var (oldVersion, oldRows) = await TablesWithRemovedFilesAsync();
        var latest = await SessionTable.Pending(Data).ReadAllAsync();
        var stray = Path.Combine(Sessions, "part-00000-stray.snappy.parquet");
        File.WriteAllBytes(stray, [1, 2, 3]);
        File.SetLastWriteTimeUtc(stray, DateTime.UtcNow.AddDays(-30));
        var fresh = Path.Combine(Sessions, "part-00000-fresh.snappy.parquet");
        File.WriteAllBytes(fresh, [1, 2, 3]);

        var dry = SessionizeProcess.Ok(Data, "vacuum", "--dry-run").Out;
        Assert.Contains("pending_sessions: would delete 1 file", dry);
        Assert.Contains("  part-00000-stray.snappy.parquet", dry);
        Assert.True(File.Exists(stray));

        var output = SessionizeProcess.Ok(Data, "vacuum", "--retain", "168h").Out;
        Assert.Contains("pending_sessions: deleted 1 file", output);
        Assert.Matches(@"pending_sessions: deleted 1 file \([\d.]+ KiB\); kept [1-9]\d* removed files? still inside the retention", output);
        Assert.False(File.Exists(stray));
        Assert.True(File.Exists(fresh));

        // Time travel inside the retention: the version before the rewind still reads, as does the latest.
        Assert.Equal(oldRows, await SessionTable.Pending(Data).ReadAllAsync(oldVersion));
        Assert.Equal(latest, await SessionTable.Pending(Data).ReadAllAsync());
    }

    [Fact]
    public async Task With_no_retention_only_the_latest_version_keeps_its_files_and_the_pipeline_goes_on()
    {
        var (oldVersion, _) = await TablesWithRemovedFilesAsync();
        var latest = await SessionTable.Pending(Data).ReadAllAsync();
        var files = Directory.GetFiles(Sessions, "*.parquet").Length;

        var output = SessionizeProcess.Ok(Data, "vacuum", "--retain", "0s").Out;
        Assert.Matches(@"pending_sessions: deleted [1-9]\d* files? .*; kept 0 removed files", output);
        Assert.True(Directory.GetFiles(Sessions, "*.parquet").Length < files);
        Assert.Equal(latest, await SessionTable.Pending(Data).ReadAllAsync());
        await Assert.ThrowsAnyAsync<Exception>(() => SessionTable.Pending(Data).ReadAllAsync(oldVersion));

        SessionizeProcess.Ok(Data, "generate", "--users", "50", "--visits", "300", "--seed", "4");
        Assert.StartsWith("batch 2:", SessionizeProcess.Ok(Data, "run").Out);
        Assert.Contains("state and tables:       agree", SessionizeProcess.Ok(Data, "status").Out);
    }

    [Fact]
    public void A_vacuum_is_refused_while_a_coordinator_runs_and_a_bad_retention_is_named()
    {
        SessionizeProcess.Ok(Data, "generate-new-rows");
        SessionizeProcess.Ok(Data, "run");
        var refused = RunningWorker.RunWhileAWorkerPolls(Data, "vacuum");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("another coordinator is active on", refused.Err);

        var bad = SessionizeProcess.Run(Data, "vacuum", "--retain", "a week");
        Assert.Equal(1, bad.ExitCode);
        Assert.Equal("sessionize: --retain 'a week' is not a duration like 168h, 30d or 0s\n", bad.Err);
    }

    public void Dispose() => _temp.Dispose();
}

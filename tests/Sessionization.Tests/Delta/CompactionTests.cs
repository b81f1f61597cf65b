using DuckDB.NET.Data;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Delta;

/// <summary>
/// <c>optimize</c> on a session table: small per-batch files joined into files of several batches, in batch order and
/// in small row groups here, in a commit that changes no rows. Readers, rewinds, corrections and DuckDB see the same
/// rows as before.
/// </summary>
public sealed class CompactionTests : IDisposable
{
    private static readonly PipelineIdentity Pipeline = new("pipeline", "visits");
    private const long Big = 1L << 30;
    private readonly TempDirectory _temp = new();

    /// <summary>Rows of one batch in no particular order: random users, some with two sessions.</summary>
    private static List<SessionRecord> BatchRows(long batch)
    {
        var random = new Random((int)batch + 11);
        var rows = new List<SessionRecord>();
        foreach (var user in Enumerable.Range(1, 40).OrderBy(_ => random.Next()).Take(random.Next(5, 25)))
        {
            var start = (batch * 10_000_000L) + random.Next(1_000_000);
            for (var s = 0; s < random.Next(1, 3); s++)
            {
                var pages = string.Join(" -> ", Enumerable.Range(0, random.Next(1, 4)).Select(p => $"page_{random.Next(50)}.html"));
                rows.Add(new SessionRecord(user, pages, batch, start + (s * 3_000_000L) + 123, start + (s * 3_000_000L) + 999_777, pages.Split(" -> ").Length));
            }
        }

        return rows;
    }

    private async Task<SessionTable> TwelveBatchesAsync()
    {
        var sessions = SessionTable.Completed(_temp.Path);
        for (var batch = 0L; batch < 12; batch++)
            await sessions.CommitBatchAsync(batch, BatchRows(batch), Pipeline);
        return sessions;
    }

    private static async Task<List<SessionRecord>> InOrderAsync(SessionTable table)
    {
        var rows = new List<SessionRecord>();
        await foreach (var row in table.ReadInBatchOrderAsync())
            rows.Add(row);
        return rows;
    }

    [Fact]
    public async Task Old_batches_become_one_file_in_batch_order_and_every_reader_sees_the_same_rows()
    {
        var sessions = await TwelveBatchesAsync();
        var before = await InOrderAsync(sessions);
        var batchesBefore = await Task.WhenAll(Enumerable.Range(0, 12).Select(b => sessions.ReadBatchAsync(b)));
        var versionBefore = sessions.Delta.LatestVersion()!.Value;

        var result = await sessions.OptimizeAsync(compactBefore: 10, Big, rowGroupRows: 7);

        var joined = Assert.Single(result.Joined);
        Assert.Equal((0L, 9L, 10), (joined.First, joined.Last, joined.Files.Count));
        Assert.Equal(versionBefore + 1, result.Version);
        Assert.Equal(3, sessions.Delta.LoadSnapshot().Files.Count);
        Assert.Equal(before, await InOrderAsync(sessions));
        for (var b = 0; b < 12; b++)
            Assert.Equal(batchesBefore[b].OrderBy(r => r.UserId).ThenBy(r => r.StartTimeMicros), (await sessions.ReadBatchAsync(b)).OrderBy(r => r.UserId).ThenBy(r => r.StartTimeMicros));
        Assert.Equal(before.OrderBy(r => r.BatchNumber).ThenBy(r => r.UserId).ThenBy(r => r.StartTimeMicros), (await sessions.ReadAllAsync(versionBefore)).OrderBy(r => r.BatchNumber).ThenBy(r => r.UserId).ThenBy(r => r.StartTimeMicros));

        // Delta's OPTIMIZE: no data change, no txn, the batch the table holds is unchanged.
        var commit = sessions.Delta.ReadCommit(result.Version!.Value);
        Assert.All(commit.OfType<AddFile>(), a => Assert.False(a.DataChange));
        Assert.All(commit.OfType<RemoveFile>(), r => Assert.False(r.DataChange));
        Assert.Empty(commit.OfType<TxnAction>());
        Assert.Equal("OPTIMIZE", commit.OfType<CommitInfoAction>().Single().Content["operation"]!.GetValue<string>());
        Assert.Equal(11, sessions.LastCommittedBatch());
    }

    [Fact]
    public async Task Duckdb_prunes_the_compacted_files_row_groups_on_their_statistics_and_still_counts_every_row()
    {
        var sessions = await TwelveBatchesAsync();
        await sessions.OptimizeAsync(compactBefore: 11, Big, rowGroupRows: 5);
        var rows = await sessions.ReadAllAsync();
        var files = string.Join(", ", sessions.Delta.LoadSnapshot().Files.Select(f => $"'{sessions.Delta.DataFilePath(f.Path)}'"));

        using var duck = new DuckDBConnection("Data Source=:memory:");
        duck.Open();
        foreach (var cut in rows.Select(r => r.StartTimeMicros).Order().Where((_, i) => i % 17 == 0))
        {
            using var command = duck.CreateCommand();
            command.CommandText = $"SELECT count(*) FROM read_parquet([{files}]) WHERE start_time >= make_timestamp({cut}) AND end_time >= make_timestamp({cut})";
            Assert.Equal(rows.LongCount(r => r.StartTimeMicros >= cut && r.EndTimeMicros >= cut), Convert.ToInt64(command.ExecuteScalar()));
        }

        foreach (var batch in Enumerable.Range(0, 12))
        {
            using var command = duck.CreateCommand();
            command.CommandText = $"SELECT count(*) FROM read_parquet([{files}]) WHERE batch_number = {batch}";
            Assert.Equal(rows.LongCount(r => r.BatchNumber == batch), Convert.ToInt64(command.ExecuteScalar()));
        }
    }

    [Fact]
    public async Task Files_are_packed_up_to_the_target_size_and_the_batches_left_alone_stay_as_they_are()
    {
        var sessions = await TwelveBatchesAsync();
        var before = await InOrderAsync(sessions);
        var small = sessions.Delta.LoadSnapshot().Files.Max(f => f.Size);

        var result = await sessions.OptimizeAsync(compactBefore: 9, targetBytes: small * 3);

        Assert.True(result.Joined.Count >= 3, $"{result.Joined.Count} files from 9 batches with room for 3 each");
        Assert.All(result.Joined, j => Assert.InRange(j.Files.Count, 2, 3));
        Assert.All(result.Joined, j => Assert.True(j.Last < 9));
        Assert.Equal(Enumerable.Range(9, 3).Select(b => (long)b), sessions.Delta.LoadSnapshot().Files
            .Select(f => sessions.Log.BatchRangeOf(f)).Where(r => r.First == r.Last && r.First >= 9).Select(r => r.First).Order());
        Assert.Equal(before, await InOrderAsync(sessions));
    }

    [Fact]
    public async Task A_rewind_after_compaction_keeps_the_compacted_file_so_a_vacuum_of_the_small_files_does_not_stop_it()
    {
        var sessions = await TwelveBatchesAsync();
        var keptBatches = (await InOrderAsync(sessions)).Where(r => r.BatchNumber < 11).ToList();
        var result = await sessions.OptimizeAsync(compactBefore: 10, Big);
        // What a vacuum with no retention does to the files the compaction replaced.
        foreach (var file in result.Joined.SelectMany(j => j.Files))
            File.Delete(sessions.Delta.DataFilePath(file.Path));

        Assert.True(sessions.RewindTo(11));

        Assert.Equal(keptBatches, await InOrderAsync(sessions));
        Assert.Equal(10, sessions.LastCommittedBatch());
        Assert.True(await sessions.CommitBatchAsync(11, BatchRows(11), Pipeline));
        Assert.Equal(2, sessions.Delta.LoadSnapshot().Files.Count(f => sessions.Log.BatchRangeOf(f) is var (first, last) && first == last));
    }

    [Fact]
    public async Task A_correction_of_a_row_in_a_compacted_file_rewrites_that_file_once_and_readers_see_the_row_once()
    {
        var sessions = await TwelveBatchesAsync();
        await sessions.OptimizeAsync(compactBefore: 10, Big, rowGroupRows: 9);
        var old3 = (await sessions.ReadBatchAsync(3))[0];
        var old5 = (await sessions.ReadBatchAsync(5))[0];
        var merged = old3 with { BatchNumber = 12, ConcatenatedPages = old3.ConcatenatedPages + " -> late", EndTimeMicros = old5.EndTimeMicros };

        Assert.True(await sessions.CommitBatchAsync(12, [merged], Pipeline, removed: [old3, old5]));

        var commit = sessions.Delta.ReadCommit(sessions.Delta.LatestVersion()!.Value);
        Assert.Single(commit.OfType<RemoveFile>());
        var rows = await InOrderAsync(sessions);
        Assert.DoesNotContain(old3, rows);
        Assert.DoesNotContain(old5, rows);
        Assert.Equal(merged, rows[^1]);
        Assert.Equal(rows.OrderBy(r => r.BatchNumber).ThenBy(r => r.UserId).ThenBy(r => r.StartTimeMicros), rows);
    }

    [Fact]
    public async Task Nothing_to_compact_commits_nothing()
    {
        var sessions = await TwelveBatchesAsync();
        var version = sessions.Delta.LatestVersion();

        Assert.Null((await sessions.OptimizeAsync(compactBefore: 1, Big)).Version);
        Assert.Null((await sessions.OptimizeAsync(compactBefore: 12, targetBytes: 10)).Version);
        Assert.Null((await SessionTable.Pending(_temp.Combine("none")).OptimizeAsync(5, Big)).Version);

        Assert.Equal(version, sessions.Delta.LatestVersion());
    }

    public void Dispose() => _temp.Dispose();
}

using System.Text.Json.Nodes;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Delta;

public class DeltaTableTests
{
    [Fact]
    public async Task Appended_visits_read_back_in_commit_and_row_order()
    {
        using var temp = new TempDirectory();
        var table = VisitsTable.In(temp.Path);

        var v0 = await table.AppendAsync([new Visit(1, 10, "a"), new Visit(long.MaxValue, 11, "ü")], "test");
        var v1 = await table.AppendAsync([new Visit(-5, 9, "c")], "test");

        Assert.Equal((0L, 1L), (v0, v1));
        var files = table.FilesFrom(SourceCursor.Start).ToList();
        Assert.Equal([0L, 1L], files.Select(f => f.Version));
        var visits = new List<Visit>();
        foreach (var f in files)
            visits.AddRange(await table.ReadFileAsync(f));
        Assert.Equal([new Visit(1, 10, "a"), new Visit(long.MaxValue, 11, "ü"), new Visit(-5, 9, "c")], visits);
        var snapshot = table.Delta.LoadSnapshot();
        Assert.Equal(1, snapshot.Version);
        Assert.Equal(VisitsTable.Schema, snapshot.Metadata.Schema);
    }

    [Fact]
    public async Task Reading_from_a_cursor_skips_what_was_consumed()
    {
        using var temp = new TempDirectory();
        var table = VisitsTable.In(temp.Path);
        for (var i = 0; i < 3; i++)
            await table.AppendAsync([new Visit(i, i, "p")], "test");

        Assert.Equal([1L, 2L], table.FilesFrom(new SourceCursor(1, 0)).Select(f => f.Version));
        Assert.Equal([2L], table.FilesFrom(new SourceCursor(1, 1)).Select(f => f.Version));
    }

    [Fact]
    public void Two_writers_racing_for_the_same_version_cannot_both_win()
    {
        using var temp = new TempDirectory();
        var table = new DeltaTable(temp.Combine("t"));
        table.Commit(0, [ProtocolAction.AppendOnlyDefault, new MetadataAction("id", VisitsTable.Schema.ToJson(), [], new Dictionary<string, string>(), 0)]);

        for (var round = 1; round <= 20; round++)
        {
            var version = round;
            var outcomes = Enumerable.Range(0, 4).AsParallel().WithDegreeOfParallelism(4).Select(writer =>
            {
                try
                {
                    table.Commit(version, [new CommitInfoAction(new JsonObject { ["writer"] = writer })]);
                    return true;
                }
                catch (DeltaConcurrentCommitException)
                {
                    return false;
                }
            }).ToList();

            Assert.Equal(1, outcomes.Count(won => won));
        }

        Assert.Equal(20, table.LatestVersion());
        Assert.Empty(Directory.EnumerateFiles(table.LogDirectory, "*.tmp"));
    }

    [Fact]
    public async Task Concurrent_appenders_each_get_their_own_version()
    {
        using var temp = new TempDirectory();
        var table = VisitsTable.In(temp.Path);
        await table.AppendAsync([new Visit(0, 0, "first")], "test");

        var versions = await Task.WhenAll(Enumerable.Range(1, 8).Select(i => Task.Run(() => VisitsTable.In(temp.Path).AppendAsync([new Visit(i, i, "p")], "test"))));

        Assert.Equal(Enumerable.Range(1, 8).Select(i => (long)i), versions.Order());
        Assert.Equal(9, table.FilesFrom(SourceCursor.Start).Count());
    }

    [Fact]
    public async Task A_session_batch_is_committed_once_with_its_transaction_id()
    {
        using var temp = new TempDirectory();
        var pending = SessionTable.Pending(temp.Path);
        SessionRecord[] rows = [new SessionRecord(1, "a -> b", 0, 10, 20, 2)];

        Assert.True(await pending.CommitBatchAsync(0, rows, Pipeline));
        Assert.False(await pending.CommitBatchAsync(0, rows, Pipeline));
        Assert.True(await pending.CommitBatchAsync(1, [], Pipeline));

        Assert.Equal(1, pending.LastCommittedBatch());
        Assert.Equal(rows, await pending.ReadAllAsync());
        Assert.Equal(rows, await pending.ReadBatchAsync(0));
        Assert.Empty(await pending.ReadBatchAsync(1));
        Assert.Equal(1, pending.Delta.LoadSnapshot().Transactions[SessionTable.AppId].Version);
    }

    [Fact]
    public async Task The_same_batch_writes_the_same_data_file()
    {
        using var a = new TempDirectory();
        using var b = new TempDirectory();
        SessionRecord[] rows = [new SessionRecord(1, "x", 0, 1, 2, 2), new SessionRecord(2, "y", 0, 3, 3, 1)];

        await SessionTable.Completed(a.Path).CommitBatchAsync(0, rows, Pipeline);
        await SessionTable.Completed(b.Path).CommitBatchAsync(0, rows, new PipelineIdentity(Guid.NewGuid().ToString(), "other"));

        // Commits carry the wall clock and each table its own id; the data files depend on the rows alone.
        var left = Directory.EnumerateFiles(a.Combine("sessions"), "*.parquet").Order().ToList();
        var right = Directory.EnumerateFiles(b.Combine("sessions"), "*.parquet").Order().ToList();
        Assert.Single(left);
        Assert.Equal(left.Select(Path.GetFileName), right.Select(Path.GetFileName));
        Assert.Equal(File.ReadAllBytes(left[0]), File.ReadAllBytes(right[0]));
    }

    [Fact]
    public async Task A_batch_written_again_after_a_rewind_never_reuses_a_file_name()
    {
        using var temp = new TempDirectory();
        var completed = SessionTable.Completed(temp.Path);
        SessionRecord[] first = [new SessionRecord(1, "x", 0, 1, 2, 2)];
        SessionRecord[] second = [new SessionRecord(1, "x -> y", 0, 1, 5, 3)];

        await completed.CommitBatchAsync(0, first, Pipeline);
        Assert.True(completed.RewindTo(0));
        await completed.CommitBatchAsync(0, second, Pipeline);

        var files = Directory.EnumerateFiles(temp.Combine("sessions"), "*.parquet").ToList();
        Assert.Equal(2, files.Count);
        Assert.Equal(first, await completed.ReadAllAsync(0));
        Assert.Empty(await completed.ReadAllAsync(1));
        Assert.Equal(second, await completed.ReadAllAsync(2));
    }

    [Fact]
    public void A_torn_commit_is_refused_naming_the_file_and_line()
    {
        using var temp = new TempDirectory();
        var table = new DeltaTable(temp.Combine("t"));
        table.Commit(0, [ProtocolAction.AppendOnlyDefault, new MetadataAction("id", VisitsTable.Schema.ToJson(), [], new Dictionary<string, string>(), 0)]);
        File.WriteAllText(table.CommitPath(1), "{\"add\":{\"path\":\"x\",\"partitionValues\":{},\"si");

        var e = Assert.Throws<DeltaTableException>(() => table.LoadSnapshot());
        Assert.Contains("00000000000000000001.json: line 1", e.Message);
    }

    [Fact]
    public async Task Null_values_in_a_visits_file_are_refused_naming_file_and_row()
    {
        using var temp = new TempDirectory();
        // A data file whose page column is nullable and holds a null in row 2.
        var userId = new Parquet.Schema.DataField<long>("user_id");
        var visitTime = new Parquet.Schema.DataField<DateTime>("visit_time");
        var page = new Parquet.Schema.DataField<string>("page", true);
        var (table, file) = await OneFileWrittenByAnotherWriterAsync(temp.Path, [userId, visitTime, page], async group =>
        {
            await group.WriteAsync<long>(userId, new long[] { 1, 2 });
            await group.WriteAsync<DateTime>(visitTime, new[] { DateTime.UtcNow, DateTime.UtcNow });
            await group.WriteAsync(page, new string?[] { "a", null }!);
        });

        var e = await Assert.ThrowsAsync<BadVisitsException>(() => table.ReadFileAsync(file));
        Assert.Contains(file.Path, e.Message);
        Assert.Contains("row 2 has a null page", e.Message);
    }

    [Fact]
    public async Task A_file_of_required_and_nullable_columns_with_an_int_user_id_is_read_row_by_row_with_its_nulls_set_aside()
    {
        using var temp = new TempDirectory();
        // A nullable 32-bit user_id, a required visit_time, a nullable page, nulls in two rows.
        var userId = new Parquet.Schema.DataField<int?>("user_id");
        var visitTime = new Parquet.Schema.DataField<DateTime>("visit_time");
        var page = new Parquet.Schema.DataField<string>("page", true);
        var times = Enumerable.Range(0, 5).Select(i => Timestamps.ToDateTime(1_700_000_000_000_000 + (i * 1_000_001L))).ToArray();
        var (table, file) = await OneFileWrittenByAnotherWriterAsync(temp.Path, [userId, visitTime, page], async group =>
        {
            await group.WriteAsync<int>(userId, new int?[] { 1, null, 3, 4, -5 });
            await group.WriteAsync<DateTime>(visitTime, times);
            await group.WriteAsync(page, new string?[] { "home", "cart", null, "home", "ü" }!);
        });

        var read = await table.ReadFileAsync(file, BadRowsMode.Quarantine, 7);

        Assert.Equal(
            [new Visit(1, Timestamps.ToMicros(times[0]), "home"), new Visit(4, Timestamps.ToMicros(times[3]), "home"), new Visit(-5, Timestamps.ToMicros(times[4]), "ü")],
            read.Visits);
        // Equal page names of a file are one string.
        Assert.Same(read.Visits[0].Page, read.Visits[1].Page);
        Assert.Equal(
            [(2L, (long?)null, (long?)Timestamps.ToMicros(times[1]), "cart", "null user_id"), (3L, 3L, Timestamps.ToMicros(times[2]), null, "null page")],
            read.Quarantined.Select(q => (q.Row!.Value, q.UserId, q.VisitTimeMicros, q.Page, q.Reason)));
    }

    [Fact]
    public async Task Reading_the_same_file_many_times_never_sees_phantom_nulls()
    {
        using var temp = new TempDirectory();
        var table = VisitsTable.In(temp.Path);
        await table.AppendAsync(Enumerable.Range(0, 5000).Select(i => new Visit(i, i, $"p{i % 7}")).ToList(), "test");
        var file = table.FilesFrom(SourceCursor.Start).Single();

        for (var round = 0; round < 40; round++)
            Assert.Equal(5000, (await table.ReadFileAsync(file)).Count);
    }

    [Fact]
    public async Task A_data_file_that_is_not_parquet_is_refused_naming_it()
    {
        using var temp = new TempDirectory();
        var table = VisitsTable.In(temp.Path);
        await table.AppendAsync([new Visit(1, 1, "a")], "test");
        var file = table.FilesFrom(SourceCursor.Start).Single();
        File.WriteAllText(table.Delta.DataFilePath(file.Path), "not parquet at all");

        var e = await Assert.ThrowsAsync<BadVisitsException>(() => table.ReadFileAsync(file));
        Assert.Contains(file.Path, e.Message);
    }

    private static PipelineIdentity Pipeline { get; } = new(Guid.NewGuid().ToString(), "visits");

    /// <summary>
    /// A visits table of one committed file whose data file another writer wrote instead: these columns in one row group.
    /// The file is returned with its new size.
    /// </summary>
    private static async Task<(VisitsTable Table, SourceFile File)> OneFileWrittenByAnotherWriterAsync(
        string directory, Parquet.Schema.DataField[] fields, Func<Parquet.ParquetRowGroupWriter, Task> writeColumns)
    {
        var table = VisitsTable.In(directory);
        await table.AppendAsync([new Visit(1, 1, "a")], "test");
        var file = table.FilesFrom(SourceCursor.Start).Single();
        var path = table.Delta.DataFilePath(file.Path);
        await using (var stream = File.Create(path))
        await using (var writer = await Parquet.ParquetWriter.CreateAsync(new Parquet.Schema.ParquetSchema(fields), stream))
        {
            using var group = writer.CreateRowGroup();
            await writeColumns(group);
        }

        return (table, file with { Size = new FileInfo(path).Length });
    }
}

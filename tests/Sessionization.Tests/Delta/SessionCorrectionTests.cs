using DuckDB.NET.Data;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Delta;

/// <summary>
/// Corrections of sessions written by earlier batches, copy-on-write: the correcting batch's commit removes the old
/// row's data file and adds it rewritten, exactly once, and a rewind brings the old file back.
/// </summary>
public sealed class SessionCorrectionTests : IDisposable
{
    private static readonly PipelineIdentity Pipeline = new("pipeline", "visits");
    private readonly TempDirectory _temp = new();

    private static SessionRecord Row(long user, string pages, long batch, long start, long end) =>
        new(user, pages, batch, start, end, pages.Split(" -> ").Length);

    private static readonly SessionRecord A = Row(1, "a", 0, 10, 10);
    private static readonly SessionRecord B = Row(2, "b -> c", 0, 20, 30);
    private static readonly SessionRecord D = Row(3, "d", 1, 40, 40);
    private static readonly SessionRecord ACorrected = Row(1, "a -> late", 2, 10, 15);

    private async Task<SessionTable> ThreeBatches()
    {
        var sessions = SessionTable.Completed(_temp.Path);
        await sessions.CommitBatchAsync(0, [A, B], Pipeline);
        await sessions.CommitBatchAsync(1, [D], Pipeline);
        Assert.True(await sessions.CommitBatchAsync(2, [ACorrected], Pipeline, removed: [A]));
        return sessions;
    }

    [Fact]
    public async Task The_latest_version_holds_the_corrected_row_once_and_the_old_version_the_old_row()
    {
        var sessions = await ThreeBatches();

        Assert.Equal([ACorrected, B, D], (await sessions.ReadAllAsync()).OrderBy(r => r.UserId));
        Assert.Equal([A, B, D], (await sessions.ReadAllAsync(version: 1)).OrderBy(r => r.UserId));
        Assert.Equal([ACorrected], await sessions.ReadBatchAsync(2));
        Assert.Equal([D], await sessions.ReadBatchAsync(1));

        var commit = sessions.Delta.ReadCommit(2);
        Assert.Single(commit.OfType<RemoveFile>());
        Assert.Equal(2, commit.OfType<AddFile>().Count());
    }

    [Fact]
    public async Task A_replayed_correcting_batch_changes_nothing()
    {
        var sessions = await ThreeBatches();

        Assert.False(await sessions.CommitBatchAsync(2, [ACorrected], Pipeline, removed: [A]));

        Assert.Equal(2, sessions.Delta.LatestVersion());
        Assert.Equal(3, (await sessions.ReadAllAsync()).Count);
    }

    [Fact]
    public async Task A_correction_that_empties_a_file_removes_it_and_rows_merged_from_two_batches_go_in_one_commit()
    {
        var sessions = await ThreeBatches();
        var merged = Row(1, "a -> late -> d", 3, 10, 40);

        Assert.True(await sessions.CommitBatchAsync(3, [merged], Pipeline, removed: [ACorrected, D]));

        Assert.Equal([merged, B], (await sessions.ReadAllAsync()).OrderBy(r => r.UserId));
        Assert.Equal(2, sessions.Delta.LoadSnapshot().Files.Count);
    }

    [Fact]
    public async Task A_rewind_before_the_correcting_batch_brings_the_old_rows_back()
    {
        var sessions = await ThreeBatches();

        Assert.True(sessions.RewindTo(2));
        Assert.Equal([A, B, D], (await sessions.ReadAllAsync()).OrderBy(r => r.UserId));
        Assert.Equal(1, sessions.LastCommittedBatch());
        Assert.Equal([D], await sessions.ReadBatchAsync(1));

        Assert.True(await sessions.CommitBatchAsync(2, [ACorrected], Pipeline, removed: [A]));
        Assert.Equal([ACorrected, B, D], (await sessions.ReadAllAsync()).OrderBy(r => r.UserId));
        Assert.True(sessions.RewindTo(0));
        Assert.Empty(await sessions.ReadAllAsync());
    }

    [Fact]
    public async Task Removing_a_row_no_batch_wrote_fails_naming_the_table_and_commits_nothing()
    {
        var sessions = await ThreeBatches();

        var error = await Assert.ThrowsAsync<DeltaTableException>(() => sessions.CommitBatchAsync(3, [], Pipeline, removed: [Row(9, "x", 0, 1, 1)]));

        Assert.Contains("sessions", error.Message);
        Assert.Contains("user 9", error.Message);
        Assert.Equal(2, sessions.LastCommittedBatch());
    }

    [Fact]
    public async Task An_outside_reader_of_the_live_files_sees_each_session_once()
    {
        var sessions = await ThreeBatches();
        var files = string.Join(", ", sessions.Delta.LoadSnapshot().Files.Select(f => $"'{sessions.Delta.DataFilePath(f.Path)}'"));

        using var duck = new DuckDBConnection("Data Source=:memory:");
        duck.Open();
        using var command = duck.CreateCommand();
        command.CommandText = $"SELECT user_id, concatenated_pages, visit_count FROM read_parquet([{files}]) ORDER BY user_id";
        using var reader = command.ExecuteReader();
        var rows = new List<string>();
        while (reader.Read())
            rows.Add($"{reader.GetInt64(0)}|{reader.GetString(1)}|{reader.GetInt64(2)}");

        Assert.Equal(["1|a -> late|2", "2|b -> c|2", "3|d|1"], rows);
    }

    public void Dispose() => _temp.Dispose();
}

using Sessionization.Domain;
using Sessionization.Persistence.UserState;

namespace Sessionization.Tests.Actors;

/// <summary>The event-time state store on SQLite: current states by user and by deadline, replays, rewinds and pruning.</summary>
public sealed class EventTimeStateStoreTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly EventTimeStateStore _store;

    public EventTimeStateStoreTests() => _store = EventTimeStateStore.Sqlite(_temp.Combine("state", "event-time.db"), TimeSpan.FromSeconds(5));

    private static EventTimeStateRow Row(long user, long batch, long? deadline, params string[] pages) =>
        new(user, deadline, UserStateCodec.Encode(new EventTimeUserState(user, batch, pages.Length == 0 ? [] : [new EventTimeSession([.. pages.Select((p, i) => new PageVisit(i, p))], null)])));

    private static string Pages(EventTimeStateRow row) => string.Join(",", row.Decode().Sessions.SelectMany(s => s.Visits).Select(v => v.Page));

    /// <summary>Saves <paramref name="rows"/> for <paramref name="batch"/> as a batch does: each with the row the store holds for its user.</summary>
    private async Task SaveAsync(long batch, params EventTimeStateRow[] rows)
    {
        await _store.RewindAsync(batch);
        var before = await _store.LoadUsersAsync([.. rows.Select(r => r.UserId)]);
        await _store.SaveBatchAsync(batch, Changes(rows.Select(r => new EventTimeStateChange(r, before.GetValueOrDefault(r.UserId)))));
    }

    /// <summary>The changes as a batch hands them to the store: one at a time, while it is still stepping users.</summary>
    private static async IAsyncEnumerable<EventTimeStateChange> Changes(IEnumerable<EventTimeStateChange> changes)
    {
        foreach (var change in changes)
        {
            await Task.Yield();
            yield return change;
        }
    }

    [Fact]
    public async Task A_later_batch_supersedes_a_users_state_and_only_current_states_are_read()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"));
        await SaveAsync(1, Row(1, 1, 300, "a", "c"));

        var states = await _store.LoadUsersAsync([1, 2, 3]);

        Assert.Equal(["1:a,c", "2:b"], states.OrderBy(s => s.Key).Select(s => $"{s.Key}:{Pages(s.Value)}"));
        Assert.Equal(1, states[1].Decode().LastAppliedBatch);
    }

    [Fact]
    public async Task Due_states_are_those_whose_deadline_the_watermark_reached_among_current_ones()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"), Row(3, 0, 150, "c"));
        await SaveAsync(1, Row(3, 1, null));

        Assert.Equal([1L], (await _store.LoadDueAsync(150)).Keys.Order());
        Assert.Equal([1L, 2L], (await _store.LoadDueAsync(200)).Keys.Order());
    }

    [Fact]
    public async Task Saving_a_batch_again_gives_the_same_states_as_saving_it_once()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"));
        await SaveAsync(1, Row(1, 1, 300, "a", "c"));

        await SaveAsync(1, Row(1, 1, 300, "a", "c"));

        Assert.Equal("a,c", Pages((await _store.LoadUsersAsync([1]))[1]));
        Assert.Equal([1L], (await _store.LoadDueAsync(300)).Keys);
        Assert.Empty(await _store.LoadDueAsync(299));
    }

    [Fact]
    public async Task A_rewind_brings_back_the_states_as_they_stood_before_the_batch()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"));
        await SaveAsync(1, Row(1, 1, 300, "a", "c"), Row(4, 1, 50, "d"));

        Assert.Equal(2, await _store.RewindAsync(1));

        var states = await _store.LoadUsersAsync([1, 2, 4]);
        Assert.Equal(["1:a", "2:b"], states.OrderBy(s => s.Key).Select(s => $"{s.Key}:{Pages(s.Value)}"));
        Assert.Equal([1L], (await _store.LoadDueAsync(100)).Keys);
    }

    [Fact]
    public async Task Pruning_keeps_what_a_rewind_to_a_retained_checkpoint_needs()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"));
        await SaveAsync(1, Row(1, 1, 300, "a", "c"), Row(2, 1, null));
        await SaveAsync(2, Row(1, 2, 400, "a", "c", "e"));

        await _store.PruneBeforeAsync(2);
        await _store.RewindAsync(2);

        var states = await _store.LoadUsersAsync([1, 2]);
        Assert.Equal(["1:a,c"], states.Select(s => $"{s.Key}:{Pages(s.Value)}"));
    }

    [Fact]
    public async Task Many_users_are_read_in_one_call()
    {
        await SaveAsync(0, [.. Enumerable.Range(1, 1_234).Select(u => Row(u, 0, u, "p"))]);

        Assert.Equal(1_234, (await _store.LoadUsersAsync([.. Enumerable.Range(1, 2_000).Select(u => (long)u)])).Count);
        Assert.Equal(1_000, (await _store.LoadDueAsync(1_000)).Count);
    }

    [Fact]
    public async Task Changes_that_end_in_an_error_save_nothing()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"));

        async IAsyncEnumerable<EventTimeStateChange> Failing()
        {
            await Task.Yield();
            yield return new EventTimeStateChange(Row(2, 1, 200, "b"), null);
            throw new InvalidOperationException("stepping failed");
        }

        await Assert.ThrowsAsync<InvalidOperationException>(() => _store.SaveBatchAsync(1, Failing()));
        Assert.Equal([1L], (await _store.LoadUsersAsync([1, 2])).Keys);
        Assert.Equal(0, await _store.RewindAsync(1));
    }

    [Fact]
    public async Task A_stored_state_the_store_does_not_have_is_refused()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"));
        var claimed = Row(2, 0, 100, "b");

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => _store.SaveBatchAsync(1, Changes([new EventTimeStateChange(Row(2, 1, 200, "b", "c"), claimed)])));

        Assert.Contains("user 2", refused.Message);
        Assert.Empty(await _store.LoadUsersAsync([2]));
    }

    [Fact]
    public void A_store_of_the_earlier_layout_is_refused_by_name()
    {
        var path = _temp.Combine("old", "event-time.db");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE event_time_states (user_id BIGINT, batch BIGINT, deadline BIGINT, superseded_in BIGINT, state BLOB)";
            command.ExecuteNonQuery();
        }

        var refused = Assert.ThrowsAny<Exception>(() => EventTimeStateStore.Sqlite(path, TimeSpan.FromSeconds(5)));

        Assert.Contains("earlier layout", refused.Message);
        Assert.Contains("--from-batch 0", refused.Message);
    }

    public void Dispose() => _temp.Dispose();
}

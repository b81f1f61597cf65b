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

    private static string Pages(EventTimeUserState state) => string.Join(",", state.Sessions.SelectMany(s => s.Visits).Select(v => v.Page));

    [Fact]
    public async Task A_later_batch_supersedes_a_users_state_and_only_current_states_are_read()
    {
        await _store.SaveBatchAsync(0, [Row(1, 0, 100, "a"), Row(2, 0, 200, "b")]);
        await _store.SaveBatchAsync(1, [Row(1, 1, 300, "a", "c")]);

        var states = await _store.LoadUsersAsync([1, 2, 3]);

        Assert.Equal(["1:a,c", "2:b"], states.OrderBy(s => s.Key).Select(s => $"{s.Key}:{Pages(s.Value)}"));
        Assert.Equal(1, states[1].LastAppliedBatch);
    }

    [Fact]
    public async Task Due_states_are_those_whose_deadline_the_watermark_reached_among_current_ones()
    {
        await _store.SaveBatchAsync(0, [Row(1, 0, 100, "a"), Row(2, 0, 200, "b"), Row(3, 0, 150, "c")]);
        await _store.SaveBatchAsync(1, [Row(3, 1, null)]);

        Assert.Equal([1L], (await _store.LoadDueAsync(150)).Keys.Order());
        Assert.Equal([1L, 2L], (await _store.LoadDueAsync(200)).Keys.Order());
    }

    [Fact]
    public async Task Saving_a_batch_again_gives_the_same_states_as_saving_it_once()
    {
        await _store.SaveBatchAsync(0, [Row(1, 0, 100, "a")]);
        await _store.SaveBatchAsync(1, [Row(1, 1, 300, "a", "c")]);

        await _store.SaveBatchAsync(1, [Row(1, 1, 300, "a", "c")]);

        Assert.Equal("a,c", Pages((await _store.LoadUsersAsync([1]))[1]));
        Assert.Equal([1L], (await _store.LoadDueAsync(300)).Keys);
        Assert.Empty(await _store.LoadDueAsync(299));
    }

    [Fact]
    public async Task A_rewind_brings_back_the_states_as_they_stood_before_the_batch()
    {
        await _store.SaveBatchAsync(0, [Row(1, 0, 100, "a"), Row(2, 0, 200, "b")]);
        await _store.SaveBatchAsync(1, [Row(1, 1, 300, "a", "c"), Row(4, 1, 50, "d")]);

        Assert.Equal(2, await _store.RewindAsync(1));

        var states = await _store.LoadUsersAsync([1, 2, 4]);
        Assert.Equal(["1:a", "2:b"], states.OrderBy(s => s.Key).Select(s => $"{s.Key}:{Pages(s.Value)}"));
        Assert.Equal([1L], (await _store.LoadDueAsync(100)).Keys);
    }

    [Fact]
    public async Task Pruning_keeps_what_a_rewind_to_a_retained_checkpoint_needs()
    {
        await _store.SaveBatchAsync(0, [Row(1, 0, 100, "a"), Row(2, 0, 200, "b")]);
        await _store.SaveBatchAsync(1, [Row(1, 1, 300, "a", "c"), Row(2, 1, null)]);
        await _store.SaveBatchAsync(2, [Row(1, 2, 400, "a", "c", "e")]);

        await _store.PruneBeforeAsync(2);
        await _store.RewindAsync(2);

        var states = await _store.LoadUsersAsync([1, 2]);
        Assert.Equal(["1:a,c"], states.Select(s => $"{s.Key}:{Pages(s.Value)}"));
    }

    [Fact]
    public async Task Many_users_are_read_in_one_call()
    {
        var rows = Enumerable.Range(1, 1_234).Select(u => Row(u, 0, u, "p")).ToList();
        await _store.SaveBatchAsync(0, rows);

        Assert.Equal(1_234, (await _store.LoadUsersAsync([.. Enumerable.Range(1, 2_000).Select(u => (long)u)])).Count);
        Assert.Equal(1_000, (await _store.LoadDueAsync(1_000)).Count);
    }

    public void Dispose() => _temp.Dispose();
}

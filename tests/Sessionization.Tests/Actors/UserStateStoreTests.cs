using Akka.Actor;
using Akka.TestKit.Xunit2;
using Sessionization.Actors;
using Sessionization.Actors.Serialization;
using Sessionization.Domain;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Tests.Actors;

/// <summary>The user state store on SQLite, alone and behind real user session actors.</summary>
public sealed class UserStateStoreTests : TestKit, IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly TempDirectory _temp = new();

    public UserStateStoreTests()
        : base(ActorTestConfig.InMemory)
    {
    }

    private UserStateStore Open() => UserStateStore.Sqlite(_temp.Combine("users.db"), TimeSpan.FromSeconds(5));

    private static UserSessionState State(long user, long batch, string page) =>
        UserSessionState.Empty(user).Apply(new SessionOpened(batch, [new PageVisit(batch, page)]));

    private static string Page(StoredUserState stored) => stored.Decode().Open!.Visits[0].Page;

    [Fact]
    public async Task A_batch_reads_its_own_rows_over_the_batch_befores_and_nothing_older()
    {
        using (var store = Open())
        {
            store.Save(0, State(1, 0, "old"));
            store.Save(1, State(1, 1, "before"));
            store.Save(1, State(2, 1, "before"));
            store.Save(2, State(2, 2, "replayed"));
            store.Save(3, State(3, 3, "later"));
            await store.FlushAsync(3);
        }

        // Reopened: everything saved survived the close.
        using var reopened = Open();
        var states = await reopened.LoadForBatchAsync(2);
        Assert.Equal([1L, 2L], states.Keys.Order());
        Assert.Equal((1L, "before"), (states[1].Batch, Page(states[1])));
        Assert.Equal((2L, "replayed"), (states[2].Batch, Page(states[2])));
        Assert.Empty(await reopened.LoadForBatchAsync(10));
    }

    [Fact]
    public async Task Saves_made_at_once_share_transactions_and_each_keeps_its_own_row()
    {
        using var store = Open();
        foreach (var u in Enumerable.Range(1, 5000))
            store.Save(4, State(u, 4, $"p{u}"));
        await store.FlushAsync(4);
        var states = await store.LoadForBatchAsync(5);
        Assert.Equal(5000, states.Count);
        Assert.All(states, s => Assert.Equal($"p{s.Key}", Page(s.Value)));
    }

    [Fact]
    public async Task A_rewind_deletes_the_batch_and_later_ones_and_counts_the_users_it_reset()
    {
        using var store = Open();
        foreach (var (batch, user) in new[] { (0L, 1L), (1, 1), (1, 2), (2, 2), (2, 3), (3, 3) })
            store.Save(batch, State(user, batch, $"b{batch}"));
        await store.FlushAsync(3);

        Assert.Equal(2, await store.RewindAsync(2));
        Assert.Equal([1L, 2L], (await store.LoadForBatchAsync(2)).Keys.Order());
        Assert.Empty(await store.LoadForBatchAsync(3));
        Assert.Equal(0, await store.RewindAsync(2));

        Assert.Equal([(1L, 0L)], (await store.LoadForBatchAsync(0)).Select(s => (s.Key, s.Value.Batch)));
        await store.PruneBeforeAsync(1);
        Assert.Empty(await store.LoadForBatchAsync(0));
        Assert.Equal([1L, 2L], (await store.LoadForBatchAsync(1)).Keys.Order());
    }

    [Fact]
    public async Task A_user_session_saves_its_new_state_and_answers_a_replay_from_the_recovered_one_without_saving_again()
    {
        using var store = new FaultyUserStateStore(Open());
        var users = Sys.ActorOf(UserSessionRegion.Props(store));

        users.Tell(new ApplyBatch(7, 0, [new PageVisit(1, "a")], UserSessionState.Empty(7)));
        Assert.Equal("a", ExpectMsg<BatchApplied>(Patience).Outcome!.Session.ConcatenatedPages);
        await store.FlushAsync(0);
        var saved = (await store.LoadForBatchAsync(1))[7];
        Assert.Equal(0, saved.Batch);

        users.Tell(new ApplyBatch(7, 1, [new PageVisit(2, "b"), new PageVisit(3, "c")], saved.Decode()));
        Assert.Equal("a -> b -> c", ExpectMsg<BatchApplied>(Patience).Outcome!.Session.ConcatenatedPages);
        await store.FlushAsync(1);

        // Batch 1 again, as after a crash before its commit: the state recovered for it already holds it.
        var recovered = (await store.LoadForBatchAsync(1))[7];
        Assert.Equal(1, recovered.Batch);
        users.Tell(new ApplyBatch(7, 1, [new PageVisit(2, "b"), new PageVisit(3, "c")], recovered.Decode()));
        Assert.Equal("a -> b -> c", ExpectMsg<BatchApplied>(Patience).Outcome!.Session.ConcatenatedPages);
        Assert.Equal(2, store.Saves);
    }

    [Fact]
    public async Task A_failed_save_fails_the_flush_of_its_batch_naming_the_user_and_the_next_flush_is_clean()
    {
        using var store = UserStateStore.Sqlite(_temp.Combine("locked", "users.db"), TimeSpan.FromMilliseconds(100));
        store.Save(0, State(1, 0, "a"));
        await store.FlushAsync(0);

        // Another writer holds the database's write lock: the next group commit fails after the busy timeout.
        await using (var other = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_temp.Combine("locked", "users.db")};Pooling=False"))
        {
            other.Open();
            await using var begin = other.CreateCommand();
            begin.CommandText = "BEGIN IMMEDIATE";
            begin.ExecuteNonQuery();
            store.Save(1, State(9, 1, "b"));
            var failure = await Assert.ThrowsAsync<UserStateSaveException>(() => store.FlushAsync(1));
            Assert.Equal((1L, 9L), (failure.Batch, failure.UserId));
            Assert.Contains("locked", failure.Message);
        }

        await store.FlushAsync(1);
        store.Save(1, State(9, 1, "b"));
        await store.FlushAsync(1);
        Assert.Equal("b", Page((await store.LoadForBatchAsync(1))[9]));
    }

    public new void Dispose()
    {
        base.Dispose();
        _temp.Dispose();
    }
}

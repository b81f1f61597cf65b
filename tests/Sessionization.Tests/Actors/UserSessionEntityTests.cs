using Akka.Actor;
using Akka.TestKit.Xunit2;
using Sessionization.Actors;
using Sessionization.Actors.Serialization;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.CoordinatorProtocol;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Tests.Actors;

/// <summary>The user session entity's lifecycle: started once, live across batches, passivated on close, recovered when cold.</summary>
public sealed class UserSessionEntityTests : TestKit, IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly long T0 = Timestamps.ToMicros(new DateTime(2026, 2, 15, 13, 23, 19, DateTimeKind.Utc));
    private readonly TempDirectory _temp = new();
    private readonly UserStateStore _store;

    public UserSessionEntityTests()
        : base(ActorTestConfig.InMemory)
    {
        _store = UserStateStore.Sqlite(_temp.Combine("state", "users.db"), TimeSpan.FromSeconds(5));
    }

    private static PageVisit[] Visit(long batch, string page) => [new PageVisit(T0 + batch, page)];

    private RegionStats Stats(IActorRef region)
    {
        region.Tell(GetRegionStats.Instance);
        return ExpectMsg<RegionStats>(Patience);
    }

    [Fact]
    public void A_user_with_visits_in_three_consecutive_batches_is_served_by_one_entity_that_passivates_when_its_session_closes()
    {
        var region = Sys.ActorOf(UserSessionRegion.Props(_store));
        var served = new List<IActorRef>();
        for (var batch = 0; batch < 3; batch++)
        {
            // Only the first batch brings a recovered state; after that the session is open and its entity holds it.
            region.Tell(new ApplyBatch(7, batch, Visit(batch, $"page_{batch}.html"), batch == 0 ? UserSessionState.Empty(7) : null));
            var applied = ExpectMsg<BatchApplied>(Patience);
            var pending = Assert.IsType<SessionPending>(applied.Outcome);
            Assert.Equal(batch + 1, pending.Session.VisitCount);
            served.Add(LastSender);
        }

        Assert.Single(served.Distinct());
        Assert.Equal(new RegionStats(1, 1), Stats(region));

        Watch(served[0]);
        region.Tell(new CloseSession(7, 3));
        ExpectTerminated(served[0], Patience);
        Assert.Equal(new RegionStats(0, 1), Stats(region));

        // Its next session starts a second incarnation.
        region.Tell(new ApplyBatch(7, 5, Visit(5, "page_5.html"), UserSessionState.Empty(7)));
        Assert.IsType<SessionPending>(ExpectMsg<BatchApplied>(Patience).Outcome);
        Assert.NotEqual(served[0], LastSender);
        Assert.Equal(new RegionStats(1, 2), Stats(region));
    }

    [Fact]
    public async Task A_cold_entity_after_a_restart_recovers_its_state_from_the_store_and_never_answers_without_it()
    {
        var first = Sys.ActorOf(UserSessionRegion.Props(_store));
        first.Tell(new ApplyBatch(7, 0, Visit(0, "page_1.html"), UserSessionState.Empty(7)));
        ExpectMsg<BatchApplied>(Patience);
        await _store.FlushAsync(0);
        Watch(first);
        Sys.Stop(first);
        ExpectTerminated(first, Patience);

        var restarted = Sys.ActorOf(UserSessionRegion.Props(_store));
        restarted.Tell(new ApplyBatch(7, 1, Visit(1, "page_2.html"), null));
        Assert.Contains("user-session-7: its session is open but its state is not in memory for batch 1", ExpectMsg<BatchApplyFailed>(Patience).Reason);

        var stored = await _store.LoadForBatchAsync(1);
        restarted.Tell(new ApplyBatch(7, 1, Visit(1, "page_2.html"), stored[7].Decode()));
        var pending = Assert.IsType<SessionPending>(ExpectMsg<BatchApplied>(Patience).Outcome);
        Assert.Equal("page_1.html -> page_2.html", pending.Session.ConcatenatedPages);
    }

    [Fact]
    public async Task Across_a_run_of_batches_entities_live_while_their_sessions_are_open_and_only_new_sessions_start_one()
    {
        var settings = SessionizationSettings.FromConfig(Sys.Settings.Config) with { BaseDirectory = _temp.Path };
        var region = Sys.ActorOf(UserSessionRegion.Props(_store));
        var coordinator = Sys.ActorOf(BatchCoordinator.Props(settings, _store, region, Sys.ActorOf(SessionSink.Props(_temp.Path))));
        // User 1 visits in every batch; users 2, 3 and 4 in one batch each, so each session closes in the batch after.
        long[][] users = [[1, 2], [1, 3], [1, 4], [1]];
        for (var batch = 0; batch < users.Length; batch++)
        {
            await VisitsTable.In(_temp.Path).AppendAsync(users[batch].Select(u => new Visit(u, T0 + batch, $"page_{batch}.html")).ToList(), "test");
            coordinator.Tell(new RunUntilDrained(1000, TestActor));
            ExpectMsg<BatchReport>(Patience);
            ExpectMsg<RunFinished>(Patience);
        }

        // One incarnation per session: a per-batch actor would have made 7.
        Assert.Equal(4, Stats(region).Incarnations);
        var pending = (await SessionTable.Pending(_temp.Path).ReadBatchAsync(3)).Single();
        Assert.Equal("page_0.html -> page_1.html -> page_2.html -> page_3.html", pending.ConcatenatedPages);
        Assert.Equal([(2L, 1L), (3L, 2L), (4L, 3L)], (await SessionTable.Completed(_temp.Path).ReadAllAsync()).OrderBy(r => r.UserId).Select(r => (r.UserId, r.BatchNumber)));
    }

    public new void Dispose()
    {
        base.Dispose();
        _store.Dispose();
        _temp.Dispose();
    }
}

using Akka.Actor;
using Akka.TestKit.Xunit2;
using Sessionization.Actors;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.CoordinatorProtocol;

namespace Sessionization.Tests.Actors;

/// <summary>The seed's walkthrough at the actor level: coordinator, user sessions and sink over real Delta tables.</summary>
public sealed class WalkthroughSimulationTests : TestKit, IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly TempDirectory _temp = new();
    private readonly SessionizationSettings _settings;
    private readonly UserStateStore _store;
    private readonly IActorRef _users;
    private readonly IActorRef _sink;

    public WalkthroughSimulationTests()
        : base(ActorTestConfig.InMemory)
    {
        _settings = SessionizationSettings.FromConfig(Sys.Settings.Config) with { BaseDirectory = _temp.Path };
        _store = UserStateStore.Sqlite(_temp.Combine("state", "users.db"), TimeSpan.FromSeconds(5));
        _users = Sys.ActorOf(UserSessionRegion.Props(_store), "user-sessions");
        _sink = Sys.ActorOf(SessionSink.Props(_temp.Path), "session-sink");
    }

    private IActorRef StartCoordinator() => Sys.ActorOf(BatchCoordinator.Props(_settings, _store, _users, _sink));

    private static readonly long T0 = Timestamps.ToMicros(new DateTime(2026, 2, 15, 13, 23, 19, DateTimeKind.Utc));

    private async Task AppendSeedRows(long offset, params (long User, string Page)[] rows) =>
        await VisitsTable.In(_temp.Path).AppendAsync(rows.Select((r, i) => new Visit(r.User, T0 + offset + i, r.Page)).ToList(), "test");

    private static readonly (long, string)[] NewRows = [(1, "page_1.html"), (1, "page_2.html"), (2, "page_3.html"), (3, "page_4.html")];

    [Fact]
    public async Task The_sink_takes_corrected_rows_out_in_the_commit_that_writes_their_replacement()
    {
        var early = new SessionRecord(1, "a", 0, 10, 10, 1);
        var other = new SessionRecord(2, "b", 0, 20, 20, 1);
        var corrected = new SessionRecord(1, "a -> late", 1, 10, 15, 2);
        var provenance = new BatchProvenance(0, SourceCursor.Start, SourceCursor.Start, 0, 0);

        _sink.Tell(new SinkProtocol.WriteBatch(0, [early, other], [], [], provenance));
        ExpectMsg<SinkProtocol.BatchWritten>(Patience);
        _sink.Tell(new SinkProtocol.WriteBatch(1, [corrected], [], [], provenance with { Batch = 1 }, CompletedRemoved: [early]));
        Assert.True(ExpectMsg<SinkProtocol.BatchWritten>(Patience).CompletedWritten);
        _sink.Tell(new SinkProtocol.WriteBatch(1, [corrected], [], [], provenance with { Batch = 1 }, CompletedRemoved: [early]));
        Assert.False(ExpectMsg<SinkProtocol.BatchWritten>(Patience).CompletedWritten);

        Assert.Equal([corrected, other], (await SessionTable.Completed(_temp.Path).ReadAllAsync()).OrderBy(r => r.UserId));
    }

    [Fact]
    public void The_coordinator_stops_when_its_user_sessions_or_its_sink_stop()
    {
        foreach (var lost in new[] { "users", "sink" })
        {
            var users = CreateTestProbe();
            var sink = CreateTestProbe();
            var coordinator = Sys.ActorOf(BatchCoordinator.Props(_settings, _store, users, sink));
            Watch(coordinator);

            Sys.Stop(lost == "users" ? users : sink);

            ExpectTerminated(coordinator, Patience);
        }
    }

    private BatchReport RunOneBatch(IActorRef coordinator)
    {
        coordinator.Tell(new RunUntilDrained(1000, TestActor));
        var report = ExpectMsg<BatchReport>(Patience);
        Assert.Equal(1, ExpectMsg<RunFinished>(Patience).Batches);
        return report;
    }

    private async Task<List<(long User, string Pages, long Batch)>> Pending() =>
        (await SessionTable.Pending(_temp.Path).ReadAllAsync()).OrderBy(r => r.BatchNumber).ThenBy(r => r.UserId).Select(r => (r.UserId, r.ConcatenatedPages, r.BatchNumber)).ToList();

    private async Task<List<(long User, string Pages, long Batch)>> Completed() =>
        (await SessionTable.Completed(_temp.Path).ReadAllAsync()).OrderBy(r => r.BatchNumber).ThenBy(r => r.UserId).Select(r => (r.UserId, r.ConcatenatedPages, r.BatchNumber)).ToList();

    [Fact]
    public async Task A_rewind_in_a_running_coordinator_reprocesses_from_the_rewound_state_not_from_memory()
    {
        var coordinator = StartCoordinator();
        await AppendSeedRows(0, NewRows);
        RunOneBatch(coordinator);
        await AppendSeedRows(1_000_000, NewRows);
        RunOneBatch(coordinator);
        await AppendSeedRows(2_000_000, (3, "page_1.html"), (4, "page_2.html"));
        RunOneBatch(coordinator);
        var pending = await Pending();
        var completed = await Completed();

        // The coordinator holds batch 2's pending rows in memory; batches 1 and 2 run again from what batch 0 left.
        coordinator.Tell(new RunUntilDrained(1, TestActor, FromBatch: 1));
        ExpectMsg<RewindReport>(Patience);
        Assert.Equal(1, ExpectMsg<BatchReport>(Patience).Batch);
        Assert.Equal(2, ExpectMsg<BatchReport>(Patience).Batch);
        ExpectMsg<RunFinished>(Patience);

        Assert.Equal(pending, await Pending());
        Assert.Equal(completed, await Completed());
    }

    [Fact]
    public async Task Three_batches_give_the_seeds_pending_and_completed_sessions()
    {
        var coordinator = StartCoordinator();

        await AppendSeedRows(0, NewRows);
        var batch0 = RunOneBatch(coordinator);
        Assert.Equal((0L, 4L, 3L, 0L), (batch0.Batch, batch0.Visits, batch0.Pending, batch0.Completed));
        Assert.Equal([(1L, "page_1.html -> page_2.html", 0L), (2L, "page_3.html", 0L), (3L, "page_4.html", 0L)], await Pending());
        Assert.Empty(await Completed());

        await AppendSeedRows(1_000_000, NewRows);
        var batch1 = RunOneBatch(coordinator);
        Assert.Equal((1L, 3L, 0L), (batch1.Batch, batch1.Pending, batch1.Completed));

        await AppendSeedRows(2_000_000, (3, "page_1.html"), (4, "page_2.html"));
        var batch2 = RunOneBatch(coordinator);
        Assert.Equal((2L, 2L, 2L, 4L), (batch2.Batch, batch2.Pending, batch2.Completed, batch2.ActiveUsers));

        Assert.Equal(
            [
                (1L, "page_1.html -> page_2.html", 0L), (2L, "page_3.html", 0L), (3L, "page_4.html", 0L),
                (1L, "page_1.html -> page_2.html -> page_1.html -> page_2.html", 1L), (2L, "page_3.html -> page_3.html", 1L), (3L, "page_4.html -> page_4.html", 1L),
                (3L, "page_4.html -> page_4.html -> page_1.html", 2L), (4L, "page_2.html", 2L),
            ],
            await Pending());
        Assert.Equal([(1L, "page_1.html -> page_2.html -> page_1.html -> page_2.html", 2L), (2L, "page_3.html -> page_3.html", 2L)], await Completed());
    }

    [Fact]
    public async Task A_run_with_no_new_commits_forms_no_batch()
    {
        var coordinator = StartCoordinator();
        coordinator.Tell(new RunUntilDrained(1000, TestActor));
        Assert.Equal(0, ExpectMsg<RunFinished>(Patience).Batches);

        await AppendSeedRows(0, NewRows);
        RunOneBatch(coordinator);
        coordinator.Tell(new RunUntilDrained(1000, TestActor));
        Assert.Equal(0, ExpectMsg<RunFinished>(Patience).Batches);
        Assert.Equal(0, SessionTable.Pending(_temp.Path).LastCommittedBatch());
    }

    [Fact]
    public async Task A_restarted_coordinator_continues_from_its_checkpoint_and_finds_open_sessions_in_the_output()
    {
        var first = StartCoordinator();
        await AppendSeedRows(0, NewRows);
        RunOneBatch(first);
        Watch(first);
        Sys.Stop(first);
        ExpectTerminated(first, Patience);

        await AppendSeedRows(1_000_000, (4, "page_9.html"));
        var second = StartCoordinator();
        var report = RunOneBatch(second);

        // Users 1-3 had open sessions; the new coordinator learns them from batch 0's pending rows and closes them.
        Assert.Equal((1L, 1L, 3L), (report.Batch, report.Pending, report.Completed));
        second.Tell(GetStatus.Instance);
        var state = ExpectMsg<StatusResult>(Patience).State;
        Assert.Equal(2, state.NextBatch);
        Assert.Null(state.InFlight);
    }

    [Fact]
    public async Task Max_files_per_batch_splits_a_run_into_several_batches()
    {
        var coordinator = StartCoordinator();
        await AppendSeedRows(0, (1, "a"));
        await AppendSeedRows(10, (1, "b"));
        await AppendSeedRows(20, (2, "c"));

        coordinator.Tell(new RunUntilDrained(1, TestActor));
        var reports = new[] { ExpectMsg<BatchReport>(Patience), ExpectMsg<BatchReport>(Patience), ExpectMsg<BatchReport>(Patience) };
        Assert.Equal(3, ExpectMsg<RunFinished>(Patience).Batches);

        Assert.Equal([0L, 1L, 2L], reports.Select(r => r.Batch));
        Assert.All(reports, r => Assert.Equal(1, r.Files));
        Assert.Equal([(1L, "a -> b", 2L)], await Completed());
        Assert.Equal((2L, "c", 2L), (await Pending()).Last());
    }

    public new void Dispose()
    {
        base.Dispose();
        _store.Dispose();
        _temp.Dispose();
    }
}

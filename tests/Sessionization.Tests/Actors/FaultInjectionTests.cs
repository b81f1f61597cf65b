using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.TestKit;
using Akka.TestKit.Xunit2;
using Sessionization.Actors;
using Sessionization.Actors.Serialization;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.CoordinatorProtocol;

namespace Sessionization.Tests.Actors;

/// <summary>
/// Journal and snapshot-store faults injected with Akka.Persistence.TestKit, and user state store faults. Each must end in a batch that is
/// tried again, or a clean stop with a clear reason, and never in output lost or written twice.
/// </summary>
public sealed class FaultInjectionTests : TestKit, IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static readonly Config TestPersistence = ConfigurationFactory.FromResource<TestJournal>("Akka.Persistence.TestKit.config.conf");

    private static readonly long T0 = Timestamps.ToMicros(new DateTime(2026, 2, 15, 13, 23, 19, DateTimeKind.Utc));

    private readonly TempDirectory _temp = new();
    private readonly SessionizationSettings _settings;
    private readonly ITestJournal _journal;
    private readonly ITestSnapshotStore _snapshots;
    private readonly FaultyUserStateStore _store;
    private IActorRef _coordinator = ActorRefs.Nobody;
    private IActorRef[] _process = [];

    public FaultInjectionTests()
        : base(ConfigurationFactory.ParseString("akka.persistence.journal.plugin = \"akka.persistence.journal.test\"\nakka.persistence.snapshot-store.plugin = \"akka.persistence.snapshot-store.test\"")
            .WithFallback(TestPersistence).WithFallback(ActorTestConfig.InMemory))
    {
        _settings = SessionizationSettings.FromConfig(Sys.Settings.Config) with { BaseDirectory = _temp.Path, BatchTimeout = TimeSpan.FromSeconds(20) };
        _journal = TestJournal.FromRef(Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor(null));
        _snapshots = TestSnapshotStore.FromRef(Akka.Persistence.Persistence.Instance.Apply(Sys).SnapshotStoreFor(null));
        _store = new FaultyUserStateStore(UserStateStore.Sqlite(_temp.Combine("state", "users.db"), TimeSpan.FromSeconds(5)));
        StartProcess();
    }

    /// <summary>A fresh set of actors over the same journal and tables, as a new process would have.</summary>
    private void StartProcess(long? sinkFailsOnceAt = null)
    {
        foreach (var actor in _process)
        {
            Watch(actor);
            Sys.Stop(actor);
            ExpectTerminated(actor, Patience);
        }

        var users = Sys.ActorOf(UserSessionRegion.Props(_store));
        var sink = Sys.ActorOf(SessionSink.Props(_temp.Path));
        if (sinkFailsOnceAt is { } failing)
            sink = Sys.ActorOf(Props.Create(() => new SinkFailingOnce(sink, failing)));
        _coordinator = Sys.ActorOf(BatchCoordinator.Props(_settings, _store, users, sink));
        _process = [_coordinator, users, sink];
    }

    /// <summary>A sink whose first write of one batch fails, after every user has applied the batch in memory and saved it.</summary>
    private sealed class SinkFailingOnce : ReceiveActor
    {
        public SinkFailingOnce(IActorRef sink, long batch)
        {
            var failed = false;
            Receive<SinkProtocol.WriteBatch>(m =>
            {
                if (m.Batch == batch && !failed)
                {
                    failed = true;
                    Sender.Tell(new SinkProtocol.BatchWriteFailed(m.Batch, "no space left on device"));
                    return;
                }

                sink.Forward(m);
            });
            ReceiveAny(m => sink.Forward(m));
        }
    }

    [Fact]
    public async Task A_batch_whose_output_fails_after_its_users_applied_it_is_retried_from_the_store_and_a_restart_loses_nothing()
    {
        StartProcess(sinkFailsOnceAt: 1);
        await AppendBatch(0);
        RunSucceeds();
        await AppendBatch(1);
        Assert.Contains("writing sessions failed: no space left on device", RunFails());

        // The retry in the same process recovers batch 1's users from the store, which holds the states they saved
        // for it: they are answered from those states, without a second save.
        RunSucceeds();
        StartProcess();
        await AppendBatch(2);
        RunSucceeds();

        await AssertSeedTablesAfterThreeBatches();
    }

    private async Task AppendBatch(int index)
    {
        (long, string)[] rows = index switch
        {
            0 or 1 => [(1, "page_1.html"), (1, "page_2.html"), (2, "page_3.html"), (3, "page_4.html")],
            _ => [(3, "page_1.html"), (4, "page_2.html")],
        };
        await VisitsTable.In(_temp.Path).AppendAsync(rows.Select((r, i) => new Visit(r.Item1, T0 + (index * 1_000_000) + i, r.Item2)).ToList(), "test");
    }

    private object Run()
    {
        _coordinator.Tell(new RunUntilDrained(1000, TestActor));
        while (true)
        {
            var message = ExpectMsg<object>(Patience);
            if (message is RunFinished or RunFailed)
                return message;
        }
    }

    private void RunSucceeds() => Assert.IsType<RunFinished>(Run());

    private string RunFails() => Assert.IsType<RunFailed>(Run()).Reason;

    private async Task AssertSeedTablesAfterThreeBatches()
    {
        var pending = (await SessionTable.Pending(_temp.Path).ReadAllAsync()).OrderBy(r => r.BatchNumber).ThenBy(r => r.UserId).Select(r => (r.UserId, r.ConcatenatedPages, r.BatchNumber));
        var completed = (await SessionTable.Completed(_temp.Path).ReadAllAsync()).OrderBy(r => r.UserId).Select(r => (r.UserId, r.ConcatenatedPages, r.BatchNumber));
        Assert.Equal(
            [
                (1L, "page_1.html -> page_2.html", 0L), (2L, "page_3.html", 0L), (3L, "page_4.html", 0L),
                (1L, "page_1.html -> page_2.html -> page_1.html -> page_2.html", 1L), (2L, "page_3.html -> page_3.html", 1L), (3L, "page_4.html -> page_4.html", 1L),
                (3L, "page_4.html -> page_4.html -> page_1.html", 2L), (4L, "page_2.html", 2L),
            ],
            pending);
        Assert.Equal([(1L, "page_1.html -> page_2.html -> page_1.html -> page_2.html", 2L), (2L, "page_3.html -> page_3.html", 2L)], completed);
        await AssertStoreAfterThreeBatches();
    }

    /// <summary>The user states every later batch could read back are those of a run without faults: none ahead, none lost.</summary>
    private async Task AssertStoreAfterThreeBatches()
    {
        async Task<List<(long User, long Batch, string? Open)>> Readable(long batch) =>
            (await _store.LoadForBatchAsync(batch)).Select(s => s.Value.Decode())
                .Select(s => (s.UserId, s.LastAppliedBatch, s.Open?.ConcatenatedPages)).OrderBy(s => s.UserId).ToList();

        Assert.Equal(
            [(1L, 1L, "page_1.html -> page_2.html -> page_1.html -> page_2.html"), (2L, 1L, "page_3.html -> page_3.html"), (3L, 2L, "page_4.html -> page_4.html -> page_1.html"), (4L, 2L, "page_2.html")],
            await Readable(2));
        Assert.Equal([(3L, 2L, "page_4.html -> page_4.html -> page_1.html"), (4L, 2L, "page_2.html")], await Readable(3));
    }

    private async Task RunTheWalkthroughWith(int faultyBatch, Func<Task> injectFault, string expectedReason, bool restartAfterFault = false)
    {
        for (var batch = 0; batch < 3; batch++)
        {
            await AppendBatch(batch);
            if (batch == faultyBatch)
            {
                await injectFault();
                Assert.Contains(expectedReason, RunFails());
                await _journal.OnWrite.Pass();
                await _journal.OnRecovery.Pass();
                _store.FailSaveFor = _ => false;
                _store.FailLoads = false;
                if (restartAfterFault)
                    StartProcess();
            }

            RunSucceeds();
        }

        await AssertSeedTablesAfterThreeBatches();
    }

    [Fact]
    public async Task A_failing_user_state_save_fails_the_batch_and_the_retry_writes_it_once()
    {
        await RunTheWalkthroughWith(
            1,
            () =>
            {
                _store.FailSaveFor = u => u == 2;
                return Task.CompletedTask;
            },
            "user-session-2: saving its state failed: disk I/O error");
    }

    [Fact]
    public async Task A_failing_user_state_save_in_the_closing_batch_fails_it_and_a_new_process_writes_it_once()
    {
        await RunTheWalkthroughWith(
            2,
            () =>
            {
                _store.FailSaveFor = u => u == 4;
                return Task.CompletedTask;
            },
            "user-session-4: saving its state failed",
            restartAfterFault: true);
    }

    [Fact]
    public async Task A_failing_commit_write_stops_the_coordinator_and_a_restart_replays_the_batch_without_doubling_it()
    {
        await RunTheWalkthroughWith(
            1,
            () => _journal.OnWrite.FailIf(p => p.Payload is BatchCommitted),
            "could not write BatchCommitted",
            restartAfterFault: true);
    }

    [Fact]
    public async Task A_failing_plan_write_stops_the_coordinator_before_anything_is_written()
    {
        await AppendBatch(0);
        await _journal.OnWrite.FailIf(p => p.Payload is BatchPlanned);
        Assert.Contains("could not write BatchPlanned", RunFails());
        Assert.False(SessionTable.Pending(_temp.Path).Delta.Exists);

        await _journal.OnWrite.Pass();
        StartProcess();
        RunSucceeds();
        Assert.Equal(3, (await SessionTable.Pending(_temp.Path).ReadAllAsync()).Count);
    }

    [Fact]
    public async Task Failing_snapshot_saves_lose_no_checkpoint_state()
    {
        await _snapshots.OnSave.Fail();
        for (var batch = 0; batch < 2; batch++)
        {
            await AppendBatch(batch);
            RunSucceeds();
        }

        StartProcess();
        await AppendBatch(2);
        RunSucceeds();
        await AssertSeedTablesAfterThreeBatches();
    }

    [Fact]
    public async Task A_failing_coordinator_recovery_stops_it_with_the_reason_and_a_later_start_recovers()
    {
        await AppendBatch(0);
        RunSucceeds();
        await AppendBatch(1);

        Sys.EventStream.Subscribe(TestActor, typeof(CoordinatorFailed));
        await _journal.OnRecovery.Fail();
        await _snapshots.OnLoad.Fail();
        StartProcess();
        Assert.Contains("recovery of the batch coordinator failed", ExpectMsg<CoordinatorFailed>(Patience).Reason);

        await _journal.OnRecovery.Pass();
        await _snapshots.OnLoad.Pass();
        StartProcess();
        RunSucceeds();
        await AppendBatch(2);
        RunSucceeds();
        await AssertSeedTablesAfterThreeBatches();
    }

    [Fact]
    public async Task A_failing_user_state_load_fails_the_batch_with_the_reason()
    {
        await AppendBatch(0);
        RunSucceeds();
        StartProcess();
        await AppendBatch(1);

        _store.FailLoads = true;
        Assert.Contains("reading the user session states for batch 1 failed: database disk image is malformed", RunFails());

        _store.FailLoads = false;
        RunSucceeds();
        await AppendBatch(2);
        RunSucceeds();
        await AssertSeedTablesAfterThreeBatches();
    }

    public new void Dispose()
    {
        base.Dispose();
        _store.Dispose();
        _temp.Dispose();
    }
}

using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.CoordinatorProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Owns the source cursor and the batch boundaries. It records each batch's plan before running it, so a
/// restart runs the same batch again, and records the commit only after the sink has made the batch's
/// output durable. A snapshot after each commit is a checkpoint; the newest <c>retain</c> are kept, and a
/// run can be rewound to any of them.
/// </summary>
public sealed class BatchCoordinator : ReceivePersistentActor, IWithTimers
{
    public const string Id = "batch-coordinator";

    private readonly SessionizationSettings _settings;
    private readonly IActorRef _userSessions;
    private readonly IUserStateStore _store;
    private readonly IActorRef _sink;
    private readonly VisitsTable _visits;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private CoordinatorState _state = CoordinatorState.Initial;
    private IReadOnlyList<SessionRow>? _pendingRows;
    private IActorRef? _reportTo;
    private int _maxFiles;
    private BadRowsMode _badRows;
    private bool _drain;
    private long? _drainUpToVersion;
    private long? _rewindRequested;
    private bool _busy;
    private int _batchesThisRun;
    private int _attempt;
    private bool _replayed;
    private bool _agreementChecked;

    public BatchCoordinator(SessionizationSettings settings, IUserStateStore store, IActorRef userSessions, IActorRef sink)
    {
        _settings = settings;
        _userSessions = userSessions;
        _store = store;
        _sink = sink;
        _visits = VisitsTable.In(settings.BaseDirectory);
        _maxFiles = settings.MaxFilesPerBatch;

        Recover<SnapshotOffer>(offer => _state = (CoordinatorState)offer.Snapshot);
        Recover<ICoordinatorEvent>(e => _state = _state.Apply(e, LastSequenceNr, settings.RetainCheckpoints));

        Command<RunUntilDrained>(OnRunUntilDrained);
        Command<StartPolling>(m =>
        {
            _reportTo = m.ReportTo;
            _maxFiles = m.MaxFilesPerBatch;
            _badRows = m.BadRows;
            _drain = false;
            Timers.StartPeriodicTimer(Poll.Instance, Poll.Instance, m.Interval);
            if (!_busy)
                Next();
        });
        Command<Poll>(_ =>
        {
            if (!_busy)
                Next();
        });
        Command<GetStatus>(_ => Sender.Tell(new StatusResult(_state)));
        Command<Planned>(OnPlanned);
        Command<PlanFailed>(f => Failed(f.Reason));
        Command<BatchExecuted>(OnExecuted);
        Command<BatchExecutionFailed>(f => Failed(f.Reason));
        Command<RewindFinished>(OnRewound);
        Command<RewindFailed>(f => Failed($"rewind to batch {f.Batch} failed: {f.Reason}"));
        Command<SaveSnapshotSuccess>(OnCheckpointSaved);
        Command<SaveSnapshotFailure>(f => _log.Warning("checkpoint at batch {0} was not saved: {1}", _state.NextBatch, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning("old checkpoints were not deleted: {0}", f.Cause.Message));
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => _log.Warning("old coordinator journal entries were not deleted: {0}", f.Cause.Message));
    }

    /// <summary>The journal is kept under the pipeline's id, so a state only ever meets the tables it was made with.</summary>
    public override string PersistenceId => _settings.Pipeline is { } pipeline ? $"{Id}-{pipeline.PipelineId}" : Id;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(SessionizationSettings settings, IUserStateStore store, IActorRef userSessions, IActorRef sink) =>
        Akka.Actor.Props.Create(() => new BatchCoordinator(settings, store, userSessions, sink));

    private sealed class Poll
    {
        public static Poll Instance { get; } = new();
    }

    private sealed record Planned(BatchPlan? Plan, long UpToVersion);

    private sealed record PlanFailed(string Reason);

    private void OnRunUntilDrained(RunUntilDrained m)
    {
        _reportTo = m.ReportTo;
        _maxFiles = m.MaxFilesPerBatch;
        _badRows = m.BadRows;
        _drain = true;
        _drainUpToVersion = null;
        _batchesThisRun = 0;
        // A batch in flight is finished before a rewind, so that the rewind takes back everything it touched;
        // whether the batch asked for is retained is checked once it is.
        _rewindRequested = m.FromBatch;

        if (!_busy)
            Next();
    }

    private string RewindRefusal(long from)
    {
        if (from >= _state.NextBatch)
            return $"batch {from} has not been committed yet (the next batch is {_state.NextBatch})";
        var retained = _state.RetainedBatches.ToList();
        return retained.Count == 0
            ? $"batch {from} is no longer retained; no checkpoints are retained"
            : $"batch {from} is no longer retained; retained checkpoints: batches {string.Join(", ", Ranges(retained))}";
    }

    private static IEnumerable<string> Ranges(List<long> batches)
    {
        for (var i = 0; i < batches.Count;)
        {
            var j = i;
            while (j + 1 < batches.Count && batches[j + 1] == batches[j] + 1)
                j++;
            yield return i == j ? $"{batches[i]}" : $"{batches[i]}..{batches[j]}";
            i = j + 1;
        }
    }

    private void Next()
    {
        _busy = true;
        if (!_agreementChecked)
        {
            // Checked once, before the state is first used: after that the coordinator is the tables' only writer.
            string? disagreement;
            try
            {
                disagreement = StateAgreement.Check(_state, OutputTables.Batches(_settings.BaseDirectory), _rewindRequested);
            }
            catch (Exception e)
            {
                disagreement = $"the output tables cannot be read: {Failures.Message(e)}";
            }

            if (disagreement is not null)
            {
                Stopping(disagreement);
                Context.Stop(Self);
                return;
            }

            _agreementChecked = true;
        }

        if (_state.InFlight is { } inFlight)
        {
            // A batch planned before a crash or failure runs again exactly as planned.
            Execute(inFlight, replayed: true);
            return;
        }

        if (_state.RewindingTo is { } rewinding)
        {
            // A rewind interrupted by a crash is run again; each of its steps is idempotent.
            StartRewind(rewinding);
            return;
        }

        if (_rewindRequested is { } requested)
        {
            _rewindRequested = null;
            if (!_state.CanRewindTo(requested))
            {
                Failed(RewindRefusal(requested));
                return;
            }

            Persist(new RewindStarted(requested), e =>
            {
                _state = _state.Apply(e, LastSequenceNr, _settings.RetainCheckpoints);
                StartRewind(requested);
            });
            return;
        }

        var batch = _state.NextBatch;
        var cursor = _state.Cursor;
        var maxFiles = _maxFiles;
        var visits = _visits;
        var upTo = _drain ? _drainUpToVersion : long.MaxValue;
        Task.Run(() =>
            {
                // A drain run takes what was committed when it began (Spark's "available now"), so it always ends.
                var limit = upTo ?? visits.Delta.LatestVersion() ?? -1;
                return new Planned(BatchPlanner.PlanNext(batch, cursor, visits.FilesFrom(cursor), maxFiles, limit), limit);
            })
            .PipeTo(Self, failure: e => new PlanFailed(Failures.Message(e)));
    }

    private void StartRewind(long batch)
    {
        ForgetLiveState();
        Context.ActorOf(RewindExecution.Props(batch, _settings.BaseDirectory, _store, _sink), $"rewind-{batch}-{++_attempt}");
    }

    private void OnRewound(RewindFinished finished)
    {
        Persist(new RewindCompleted(finished.Batch), e =>
        {
            _state = _state.Apply(e, LastSequenceNr, _settings.RetainCheckpoints);
            SaveSnapshot(_state);
            _reportTo?.Tell(new RewindReport(finished.Batch, finished.UndoneBatches, finished.UsersReset));
            Next();
        });
    }

    private void OnPlanned(Planned planned)
    {
        if (_drain)
            _drainUpToVersion ??= planned.UpToVersion;
        if (planned.Plan is not { } plan)
        {
            _busy = false;
            if (_drain)
                _reportTo?.Tell(new RunFinished(_batchesThisRun));
            return;
        }

        Persist(new BatchPlanned(plan), e =>
        {
            _state = _state.Apply(e, LastSequenceNr, _settings.RetainCheckpoints);
            Execute(plan, replayed: false);
        });
    }

    private void Execute(BatchPlan plan, bool replayed)
    {
        _replayed = replayed;
        Context.ActorOf(
            BatchExecution.Props(plan, _pendingRows, _badRows, _settings.BaseDirectory, _store, _userSessions, _sink, _settings.BatchTimeout, _settings.MaxUsersInFlight),
            $"batch-{plan.Batch}-{++_attempt}");
    }

    private void OnExecuted(BatchExecuted executed)
    {
        var plan = executed.Plan;
        Persist(new BatchCommitted(plan.Batch, plan.To, executed.Visits, executed.Pending, executed.Completed), e =>
        {
            _state = _state.Apply(e, LastSequenceNr, _settings.RetainCheckpoints);
            _pendingRows = executed.PendingRows;
            SaveSnapshot(_state);
            _batchesThisRun++;
            _reportTo?.Tell(new BatchReport(
                plan.Batch, plan.Files.Count, plan.Files[0].Version, plan.LastVersion, executed.Visits, executed.ActiveUsers,
                executed.Pending, executed.Completed, executed.Quarantined, _replayed, executed.Elapsed));
            Next();
        });
    }

    private void OnCheckpointSaved(SaveSnapshotSuccess saved)
    {
        // The oldest retained checkpoint's commit is the oldest journal position still needed; everything before it goes.
        if (_state.Checkpoints.Count == 0)
            return;
        var oldest = _state.Checkpoints[0].CommitSequenceNr;
        if (oldest <= 1)
            return;
        DeleteSnapshots(new SnapshotSelectionCriteria(oldest - 1));
        DeleteMessages(oldest - 1);
        // A rewind to the oldest retained batch needs the user states the batch before it left; older ones go.
        var log = _log;
        var keepFrom = _state.Checkpoints[0].Batch - 1;
        _store.PruneBeforeAsync(keepFrom).ContinueWith(
            t => log.Warning("user session states before batch {0} were not deleted: {1}", keepFrom, Failures.Message(t.Exception!)),
            TaskContinuationOptions.OnlyOnFaulted);
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        Stopping($"recovery of the batch coordinator failed: {Failures.Innermost(reason).Message}");
        base.OnRecoveryFailure(reason, message);
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        Stopping($"the batch coordinator could not write {@event.GetType().Name} to its journal: {Failures.Innermost(cause).Message}");
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        // A rejected event leaves the coordinator running; the batch is reported failed and tried again.
        Failed($"the journal rejected the batch coordinator's {@event.GetType().Name}: {Failures.Innermost(cause).Message}");
        base.OnPersistRejected(cause, @event, sequenceNr);
    }

    /// <summary>
    /// What the process holds beyond the store and the tables (the last pending rows, the live entities) may now be
    /// ahead of them (a batch failed after its users applied it) or behind them (a rewind): it goes, and the next
    /// batch recovers from the table and the store.
    /// </summary>
    private void ForgetLiveState()
    {
        _pendingRows = null;
        _userSessions.Tell(UserSessionProtocol.ResetEntities.Instance);
    }

    private void Stopping(string reason)
    {
        Context.System.EventStream.Publish(new CoordinatorFailed(reason));
        _reportTo?.Tell(new RunFailed(reason));
    }

    private void Failed(string reason)
    {
        _busy = false;
        ForgetLiveState();
        // A worker reports the failure and tries the same batch again at its next poll; a drain run ends.
        _reportTo?.Tell(new RunFailed(reason));
    }
}

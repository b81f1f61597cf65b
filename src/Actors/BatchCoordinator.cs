using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using static Sessionization.Actors.CoordinatorProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Owns the source cursor and the batch boundaries. It records each batch's plan before running it, so a
/// restart runs the same batch again, and records the commit only after the sink has made the batch's
/// output durable. A snapshot after each commit is a checkpoint; the newest <c>retain</c> are kept.
/// </summary>
public sealed class BatchCoordinator : ReceivePersistentActor, IWithTimers
{
    public const string Id = "batch-coordinator";

    /// <summary>Every batch persists exactly two events (planned, committed), which is how old checkpoints are located.</summary>
    private const int EventsPerBatch = 2;

    private readonly SessionizationSettings _settings;
    private readonly IActorRef _userSessions;
    private readonly IActorRef _sink;
    private readonly VisitsTable _visits;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private CoordinatorState _state = CoordinatorState.Initial;
    private IReadOnlySet<long>? _openUsers;
    private IActorRef? _reportTo;
    private int _maxFiles;
    private bool _drain;
    private bool _busy;
    private int _batchesThisRun;
    private int _attempt;
    private bool _replayed;

    public BatchCoordinator(SessionizationSettings settings, IActorRef userSessions, IActorRef sink)
    {
        _settings = settings;
        _userSessions = userSessions;
        _sink = sink;
        _visits = VisitsTable.In(settings.BaseDirectory);
        _maxFiles = settings.MaxFilesPerBatch;

        Recover<SnapshotOffer>(offer => _state = (CoordinatorState)offer.Snapshot);
        Recover<ICoordinatorEvent>(e => _state = _state.Apply(e));

        Command<RunUntilDrained>(m =>
        {
            _reportTo = m.ReportTo;
            _maxFiles = m.MaxFilesPerBatch;
            _drain = true;
            _batchesThisRun = 0;
            if (!_busy)
                Next();
        });
        Command<StartPolling>(m =>
        {
            _reportTo = m.ReportTo;
            _maxFiles = m.MaxFilesPerBatch;
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
        Command<SaveSnapshotSuccess>(OnCheckpointSaved);
        Command<SaveSnapshotFailure>(f => _log.Warning("checkpoint after batch {0} was not saved: {1}", _state.NextBatch - 1, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning("old checkpoints were not deleted: {0}", f.Cause.Message));
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => _log.Warning("old coordinator journal entries were not deleted: {0}", f.Cause.Message));
    }

    public override string PersistenceId => Id;

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(SessionizationSettings settings, IActorRef userSessions, IActorRef sink) =>
        Akka.Actor.Props.Create(() => new BatchCoordinator(settings, userSessions, sink));

    private sealed class Poll
    {
        public static Poll Instance { get; } = new();
    }

    private sealed record Planned(BatchPlan? Plan);

    private sealed record PlanFailed(string Reason);

    private void Next()
    {
        _busy = true;
        if (_state.InFlight is { } inFlight)
        {
            // A batch planned before a crash or failure runs again exactly as planned.
            Execute(inFlight, replayed: true);
            return;
        }

        var batch = _state.NextBatch;
        var cursor = _state.Cursor;
        var maxFiles = _maxFiles;
        var visits = _visits;
        Task.Run(() => new Planned(BatchPlanner.PlanNext(batch, cursor, visits.FilesFrom(cursor), maxFiles)))
            .PipeTo(Self, failure: e => new PlanFailed((e is AggregateException { InnerException: { } i } ? i : e).Message));
    }

    private void OnPlanned(Planned planned)
    {
        if (planned.Plan is not { } plan)
        {
            _busy = false;
            if (_drain)
                _reportTo?.Tell(new RunFinished(_batchesThisRun));
            return;
        }

        Persist(new BatchPlanned(plan), e =>
        {
            _state = _state.Apply(e);
            Execute(plan, replayed: false);
        });
    }

    private void Execute(BatchPlan plan, bool replayed)
    {
        _replayed = replayed;
        Context.ActorOf(
            BatchExecution.Props(plan, _openUsers, _settings.BaseDirectory, _userSessions, _sink, _settings.BatchTimeout),
            $"batch-{plan.Batch}-{++_attempt}");
    }

    private void OnExecuted(BatchExecuted executed)
    {
        var plan = executed.Plan;
        Persist(new BatchCommitted(plan.Batch, plan.To, executed.Visits, executed.Pending, executed.Completed), e =>
        {
            _state = _state.Apply(e);
            _openUsers = executed.OpenUsers;
            SaveSnapshot(_state);
            _batchesThisRun++;
            _reportTo?.Tell(new BatchReport(
                plan.Batch, plan.Files.Count, plan.Files[0].Version, plan.LastVersion, executed.Visits, executed.ActiveUsers,
                executed.Pending, executed.Completed, _replayed, executed.Elapsed));
            Next();
        });
    }

    private void OnCheckpointSaved(SaveSnapshotSuccess saved)
    {
        var oldest = saved.Metadata.SequenceNr - ((long)_settings.RetainCheckpoints * EventsPerBatch);
        if (oldest <= 0)
            return;
        // Checkpoints older than the retained ones, and the journal they cover, are no longer needed.
        DeleteSnapshots(new SnapshotSelectionCriteria(oldest));
        DeleteMessages(oldest);
    }

    private void Failed(string reason)
    {
        _busy = false;
        _openUsers = null;
        // A worker reports the failure and tries the same batch again at its next poll; a drain run ends.
        _reportTo?.Tell(new RunFailed(reason));
    }
}

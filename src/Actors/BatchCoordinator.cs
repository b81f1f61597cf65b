using Akka.Actor;
using Akka.Event;
using Akka.Persistence;
using Akka.Streams;
using Akka.Streams.Dsl;
using Sessionization.Domain;
using Sessionization.Persistence;
using Sessionization.Persistence.Delta;
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
public sealed class BatchCoordinator : ReceivePersistentActor
{
    public const string Id = "batch-coordinator";

    private readonly SessionizationSettings _settings;
    private readonly IActorRef _userSessions;
    private readonly IUserStateStore _store;
    private readonly EventTimeStateStore? _eventTimeStore;
    private readonly EventTimeSessionPolicy _policy;
    private readonly IActorRef _sink;
    private readonly VisitsTable _visits;
    private readonly VisitsBacklog _backlog;
    private readonly ILoggingAdapter _log = Context.GetLogger();
    private readonly IMaterializer _materializer;
    private BatchCoordination _coordination = BatchCoordination.Initial;
    private IReadOnlyList<SessionRecord>? _pendingRows;
    private StateRows? _eventTimeStates;
    private DeadlineIndex? _eventTimeDeadlines;
    private IActorRef? _reportTo;
    private int _attempt;
    private bool _agreementChecked;
    private UniqueKillSwitch? _polling;
    private DateTime _lastActivityUtc = DateTime.UtcNow;
    private int _failuresInARow;
    private string? _lastFailure;
    private CoordinatorActivity _activity;
    private DateTime _retryAtUtc = DateTime.MinValue;
    private bool _compacting;
    private long _compactedBefore;
    private PreparedVisits? _readAhead;

    /// <param name="eventTimeStore">The event-time session states; needed in event-time mode, and taken back by rewinds in either.</param>
    public BatchCoordinator(SessionizationSettings settings, IUserStateStore store, IActorRef userSessions, IActorRef sink, EventTimeStateStore? eventTimeStore = null)
    {
        _settings = settings;
        _userSessions = userSessions;
        _store = store;
        _eventTimeStore = eventTimeStore;
        _policy = new EventTimeSessionPolicy(settings.Sessions.EventTime);
        _sink = sink;
        _visits = VisitsTable.In(settings.BaseDirectory);
        _backlog = new VisitsBacklog(_visits);
        _activity = CoordinatorActivity.Read(settings.BaseDirectory);
        _materializer = Context.Materializer();
        // Without its user sessions or its sink no batch can finish: the coordinator stops rather than wait for
        // answers that will not come, so a run ends with the reason and a worker's supervisor restarts it.
        Context.Watch(userSessions);
        Context.Watch(sink);

        Recover<SnapshotOffer>(offer => _coordination = _coordination with { State = (CoordinatorState)offer.Snapshot });
        Recover<ICoordinatorEvent>(e => _coordination = _coordination.Apply(e, LastSequenceNr, settings.RetainCheckpoints));
        Recover<RecoveryCompleted>(_ => SessionizationMetrics.Publish(g => g with { OpenSessions = State.OpenSessions }));

        Command<RunUntilDrained>(m =>
        {
            _reportTo = m.ReportTo;
            _coordination = _coordination.DrainRequested(m.MaxFilesPerBatch, m.BadRows, m.FromBatch, m.EndOfInput);
            Next();
        });
        Command<StartPolling>(m =>
        {
            _reportTo = m.ReportTo;
            _coordination = _coordination.PollingRequested(m.MaxFilesPerBatch, m.BadRows);
            // A tick source materialized in the coordinator's context: it stops with the coordinator, and a tick
            // that comes while a batch is in flight finds nothing to do (Next() forms no second batch).
            _polling?.Shutdown();
            _polling = Source.Tick(m.Interval, m.Interval, Poll.Instance)
                .ViaMaterialized(KillSwitches.Single<Poll>(), Keep.Right)
                .To(Sink.ActorRef<Poll>(Self, PollingStopped.Instance, _ => PollingStopped.Instance))
                .Run(_materializer);
            Next();
        });
        Command<Terminated>(t =>
        {
            if (CoordinatedShutdown.Get(Context.System).ShutdownReason is null)
                _log.Error("the {0} actor stopped; no batch can run without it", t.ActorRef.Path.Name);
            Context.Stop(Self);
        });
        // After a failure the ticks go on, but the next attempt waits for its backoff.
        Command<Poll>(_ =>
        {
            if (DateTime.UtcNow >= _retryAtUtc)
                Next();
        });
        Command<PollingStopped>(_ => { });
        Command<GetStatus>(_ => Sender.Tell(new StatusResult(State)));
        Command<GetHealth>(_ => Sender.Tell(new HealthResult(_polling is not null, _failuresInARow, _failuresInARow > 0 ? _retryAtUtc : null, _lastFailure)));
        Command<Planned>(OnPlanned);
        Command<PlanFailed>(f => Failed(f.Reason));
        Command<BatchExecuted>(OnExecuted);
        Command<EventTimeBatchStepped>(ReadAhead);
        Command<BatchExecutionFailed>(f => Failed(f.Reason));
        Command<RewindFinished>(OnRewound);
        Command<RewindFailed>(f => Failed($"rewind to batch {f.Batch} failed: {f.Reason}"));
        Command<SinkProtocol.TablesCompacted>(OnCompacted);
        Command<SinkProtocol.TablesCompactionFailed>(f =>
        {
            // Compaction is upkeep: the batches go on without it, and the next due compaction tries again.
            _compacting = false;
            _log.Warning("compacting the session tables' files of batches before {Batch} failed: {Reason}", f.Before, f.Reason);
            Next();
        });
        Command<SaveSnapshotSuccess>(OnCheckpointSaved);
        Command<SaveSnapshotFailure>(f => _log.Warning("checkpoint at batch {Batch} was not saved: {Reason}", State.NextBatch, f.Cause.Message));
        Command<DeleteSnapshotsSuccess>(_ => { });
        Command<DeleteSnapshotsFailure>(f => _log.Warning("old checkpoints were not deleted: {0}", f.Cause.Message));
        Command<DeleteMessagesSuccess>(_ => { });
        Command<DeleteMessagesFailure>(f => _log.Warning("old coordinator journal entries were not deleted: {0}", f.Cause.Message));
    }

    /// <summary>The journal is kept under the pipeline's id, so a state only ever meets the tables it was made with.</summary>
    public override string PersistenceId => _settings.Pipeline is { } pipeline ? $"{Id}-{pipeline.PipelineId}" : Id;

    public static Props Props(SessionizationSettings settings, IUserStateStore store, IActorRef userSessions, IActorRef sink, EventTimeStateStore? eventTimeStore = null) =>
        Akka.Actor.Props.Create(() => new BatchCoordinator(settings, store, userSessions, sink, eventTimeStore));

    private sealed class Poll
    {
        public static Poll Instance { get; } = new();
    }

    private sealed class PollingStopped
    {
        public static PollingStopped Instance { get; } = new();
    }

    private sealed record Planned(BatchPlan? Plan, long UpToVersion, long? IdleWatermark);

    private sealed record PlanFailed(string Reason);

    private CoordinatorState State => _coordination.State;

    private void Apply(ICoordinatorEvent e) => _coordination = _coordination.Apply(e, LastSequenceNr, _settings.RetainCheckpoints);

    private void Next()
    {
        // No batch while the tables are being compacted: the compaction's commits and a batch's must not race.
        if (_compacting)
            return;
        var (next, step) = _coordination.Next();
        if (step is null)
            return;
        if (!_agreementChecked)
        {
            // Checked once, before the state is first used: after that the coordinator is the tables' only writer.
            string? disagreement;
            try
            {
                disagreement = _coordination.RulesRefusal(_settings.Sessions)
                    ?? StateAgreement.Check(State, OutputTables.Batches(_settings.BaseDirectory), _coordination.RewindRequested);
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

        _coordination = next;
        switch (step)
        {
            case CoordinatorStep.ReplayBatch replay:
                Execute(replay.Plan);
                break;
            case CoordinatorStep.ResumeRewind resume:
                StartRewind(resume.Batch);
                break;
            case CoordinatorStep.BeginRewind begin:
                Persist(new RewindStarted(begin.Batch), e =>
                {
                    Apply(e);
                    StartRewind(begin.Batch);
                });
                break;
            case CoordinatorStep.RefuseRewind refuse:
                Failed(refuse.Reason);
                break;
            case CoordinatorStep.PlanBatch plan:
                var visits = _visits;
                var idle = IdleWatermark();
                var backlog = _backlog;
                Task.Run(() =>
                    {
                        var latest = visits.Delta.LatestVersion() ?? -1;
                        MeasureBacklog(backlog, plan.Cursor, latest);
                        var limit = plan.UpToVersion ?? latest;
                        return new Planned(PlanNext(visits, plan, limit), limit, idle);
                    })
                    .PipeTo(Self, failure: e => new PlanFailed(Failures.Message(e)));
                break;
        }
    }

    private void StartRewind(long batch)
    {
        ForgetLiveState();
        Context.ActorOf(RewindExecution.Props(batch, _settings.BaseDirectory, _store, _sink, _eventTimeStore), $"rewind-{batch}-{++_attempt}");
    }

    private void OnRewound(RewindFinished finished)
    {
        Persist(new RewindCompleted(finished.Batch), e =>
        {
            Apply(e);
            _coordination = _coordination.Rewound();
            SaveSnapshot(State);
            _reportTo?.Tell(new RewindReport(finished.Batch, finished.UndoneBatches, finished.UsersReset));
            Next();
        });
    }

    private void OnPlanned(Planned planned)
    {
        (_coordination, var toRun, var finished) = _coordination.Planned(planned.Plan, planned.UpToVersion, planned.IdleWatermark);
        if (finished)
            _reportTo?.Tell(new RunFinished(_coordination.BatchesThisRun));
        if (toRun is not { } plan)
            return;
        if (plan.Files.Count > 0 || plan.WatermarkAtLeast is not null)
            _lastActivityUtc = DateTime.UtcNow;

        Persist(new BatchPlanned(plan, _settings.Sessions.Describe()), e =>
        {
            Apply(e);
            Execute(plan);
        });
    }

    /// <summary>
    /// The watermark a polling worker moves to once its source has been quiet for its idle-close time: the wall clock
    /// minus the watermark delay. Null in any other case.
    /// </summary>
    private long? IdleWatermark()
    {
        if (_settings.Sessions is not { Mode: SessionMode.EventTime, IdleClose: { } idleClose } || _coordination.Request is not { Drain: false })
            return null;
        var now = DateTime.UtcNow;
        if (now - _lastActivityUtc < idleClose)
            return null;
        return Timestamps.ToMicros(now) - _settings.Sessions.EventTime.WatermarkDelayMicros;
    }

    private void Execute(BatchPlan plan)
    {
        if (_settings.Sessions.Mode == SessionMode.EventTime)
        {
            var input = new EventTimeInput(State.WatermarkMicros ?? Watermark.None, State.OpenSessions, _settings.Sessions.Describe(), _eventTimeStates, _eventTimeDeadlines)
            {
                ReadAhead = _readAhead,
            };
            // Handed over once: a batch run again reads its files itself.
            _readAhead = null;
            Context.ActorOf(
                EventTimeBatchExecution.Props(plan, input, _coordination.Request!.BadRows, _settings.BaseDirectory, _eventTimeStore!, _policy, _sink),
                $"batch-{plan.Batch}-{++_attempt}");
            return;
        }

        Context.ActorOf(
            BatchExecution.Props(plan, _pendingRows, _coordination.Request!.BadRows, _settings.BaseDirectory, _store, _userSessions, _sink, _settings.BatchTimeout, _settings.MaxUsersInFlight),
            $"batch-{plan.Batch}-{++_attempt}");
    }

    /// <summary>
    /// An event-time batch has stepped its users and is saving and committing: the batch most likely next (the files
    /// after it, as its planner would take them now) is read and grouped meanwhile, on the core the commit leaves
    /// idle. Nothing is planned or recorded here; the next batch is planned as always, and uses what was read only if
    /// its plan and its watermark before it are the ones read for (<see cref="PreparedVisits.ForAsync"/>).
    /// </summary>
    private void ReadAhead(EventTimeBatchStepped stepped)
    {
        if (_coordination.PlanAfter(stepped.Plan) is not { } next)
            return;
        var badRows = _coordination.Request!.BadRows;
        var visits = _visits;
        var baseDirectory = _settings.BaseDirectory;
        var policy = _policy;
        var materializer = _materializer;
        _readAhead = new PreparedVisits(badRows, stepped.WatermarkAfter, Task.Run<(BatchPlan, BatchVisits)?>(async () =>
        {
            var plan = PlanNext(visits, next, next.UpToVersion ?? visits.Delta.LatestVersion() ?? -1);
            return plan is null ? null : (plan, await EventTimeBatchExecution.PrepareAsync(plan, badRows, baseDirectory, stepped.WatermarkAfter, policy, materializer));
        }));
    }

    /// <summary>The batch <paramref name="step"/> asks for, from the visits table's files up to <paramref name="upToVersion"/>.</summary>
    private static BatchPlan? PlanNext(VisitsTable visits, CoordinatorStep.PlanBatch step, long upToVersion) =>
        BatchPlanner.PlanNext(step.Batch, step.Cursor, visits.FilesFrom(step.Cursor), step.MaxFilesPerBatch, upToVersion);

    private void OnExecuted(BatchExecuted executed)
    {
        var plan = executed.Plan;
        Persist(new BatchCommitted(plan.Batch, plan.To, executed.Visits, executed.Pending, executed.Completed, executed.LatestVisitMicros, executed.WatermarkMicros), e =>
        {
            Apply(e);
            var replayed = _coordination.Replaying;
            _coordination = _coordination.Committed();
            (_failuresInARow, _retryAtUtc, _lastFailure) = (0, DateTime.MinValue, null);
            Measure(executed);
            Report(new CoordinatorActivity(plan.Batch, DateTimeOffset.UtcNow, executed.Elapsed.TotalMilliseconds, executed.Visits, 0, null, null));
            _pendingRows = executed.PendingRows;
            _eventTimeStates = executed.EventTimeStates;
            _eventTimeDeadlines = executed.EventTimeDeadlines;
            SaveSnapshot(State);
            _reportTo?.Tell(new BatchReport(
                plan.Batch, plan.Files.Count, plan.Files.Count == 0 ? plan.LastVersion : plan.Files[0].Version, plan.LastVersion, executed.Visits, executed.ActiveUsers,
                executed.Pending, executed.Completed, executed.Quarantined, replayed, executed.Elapsed)
            {
                Kind = plan.EndOfInput ? BatchKind.EndOfInput : plan.WatermarkAtLeast is not null ? BatchKind.IdleClose : BatchKind.Visits,
                Corrected = executed.Corrected,
                Late = executed.Late,
                WatermarkMicros = executed.WatermarkMicros,
            });
            if (!CompactIfDue(plan.Batch))
                Next();
        });
    }

    /// <summary>
    /// With <c>optimize-every</c>, every so many batches the sink compacts the files of the batches no rewind can take
    /// back, before the next batch is planned. True when it started one; <see cref="OnCompacted"/> goes on from there.
    /// </summary>
    private bool CompactIfDue(long committed)
    {
        if (_settings.OptimizeEvery is not { } every || (committed + 1) % every != 0)
            return false;
        if (Compaction.CompactBefore(State) is not { } before || before <= _compactedBefore)
            return false;
        _compacting = true;
        _sink.Tell(new SinkProtocol.CompactTables(before, _settings.OptimizeTargetBytes));
        return true;
    }

    private void OnCompacted(SinkProtocol.TablesCompacted compacted)
    {
        _compacting = false;
        _compactedBefore = compacted.Before;
        foreach (var result in compacted.Results)
            SessionizationMetrics.FilesCompacted.Add(result.Joined.Sum(j => j.Files.Count), new KeyValuePair<string, object?>("table", result.Table));
        _reportTo?.Tell(new CompactionReport(compacted.Before, compacted.Results));
        Next();
    }

    /// <summary>The backlog the worker is about to work on; a table that cannot be measured leaves the gauges as they were.</summary>
    private static void MeasureBacklog(VisitsBacklog backlog, SourceCursor from, long latest)
    {
        try
        {
            var measured = backlog.Measure(from, latest);
            SessionizationMetrics.Publish(g => g with { VersionsBehind = measured.Versions, VisitsBehind = measured.Visits, OldestUnprocessedCommit = measured.OldestCommit });
        }
        catch (Exception e) when (e is IOException or DeltaTableException or UnauthorizedAccessException)
        {
            // The plan reads the same commits and reports the failure.
        }
    }

    /// <summary>Tells <c>status</c> in another process what happened; a report that cannot be written is only a warning.</summary>
    private void Report(CoordinatorActivity activity)
    {
        _activity = activity;
        try
        {
            activity.Write(_settings.BaseDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _log.Warning("the coordinator's activity report was not written: {0}", e.Message);
        }
    }

    private static void Measure(BatchExecuted executed)
    {
        SessionizationMetrics.BatchesCommitted.Add(1);
        SessionizationMetrics.VisitsProcessed.Add(executed.Visits);
        SessionizationMetrics.BatchVisits.Record(executed.Visits);
        SessionizationMetrics.BatchUsers.Record(executed.ActiveUsers);
        SessionizationMetrics.BatchDuration.Record(executed.Elapsed.TotalSeconds);
        SessionizationMetrics.Publish(g => g with { OpenSessions = executed.Pending, FailuresInARow = 0, RetryAt = null });
    }

    private void OnCheckpointSaved(SaveSnapshotSuccess saved)
    {
        // The oldest retained checkpoint's commit is the oldest journal position still needed; everything before it goes.
        if (State.Checkpoints.Count == 0)
            return;
        var oldest = State.Checkpoints[0].CommitSequenceNr;
        if (oldest <= 1)
            return;
        DeleteSnapshots(new SnapshotSelectionCriteria(oldest - 1));
        DeleteMessages(oldest - 1);
        // A rewind to the oldest retained batch needs the user states the batch before it left; older ones go.
        var log = _log;
        var keepFrom = State.Checkpoints[0].Batch - 1;
        _store.PruneBeforeAsync(keepFrom).ContinueWith(
            t => log.Warning("user session states before batch {Batch} were not deleted: {Reason}", keepFrom, Failures.Message(t.Exception!)),
            TaskContinuationOptions.OnlyOnFaulted);
        _eventTimeStore?.PruneBeforeAsync(keepFrom).ContinueWith(
            t => log.Warning("event-time session states before batch {Batch} were not deleted: {Reason}", keepFrom, Failures.Message(t.Exception!)),
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
    /// What the process holds beyond the store and the tables (the last pending rows, the live entities, the event-time
    /// states of the last batch and the stored users' deadlines) may now be ahead of them (a batch failed after its
    /// users applied it) or behind them (a rewind): it goes, and the next batch recovers from the table and the store.
    /// </summary>
    private void ForgetLiveState()
    {
        _pendingRows = null;
        _eventTimeStates = null;
        _eventTimeDeadlines = null;
        _readAhead = null;
        _userSessions.Tell(UserSessionProtocol.ResetEntities.Instance);
    }

    private void Stopping(string reason)
    {
        Context.System.EventStream.Publish(new CoordinatorFailed(reason));
        _reportTo?.Tell(new RunFailed(reason));
    }

    private void Failed(string reason)
    {
        _coordination = _coordination.Failed();
        ForgetLiveState();
        // A worker reports the failure and tries the same batch again once its backoff has passed; a drain run ends.
        _failuresInARow++;
        var delay = Backoff.Delay(_failuresInARow, _settings.RetryInitial, _settings.RetryMax);
        _retryAtUtc = DateTime.UtcNow + delay;
        _lastFailure = reason;
        SessionizationMetrics.BatchesFailed.Add(1);
        var (failures, retryAt) = (_failuresInARow, new DateTimeOffset(_retryAtUtc, TimeSpan.Zero));
        SessionizationMetrics.Publish(g => g with { FailuresInARow = failures, RetryAt = retryAt });
        Report(_activity with { FailuresInARow = failures, NextAttemptAt = retryAt, LastFailure = reason });
        _log.Warning(
            "batch {Batch} failed: {Reason} (failure {FailuresInARow} in a row; trying again in {RetryIn})",
            State.InFlight?.Batch ?? State.NextBatch,
            reason,
            _failuresInARow,
            Durations.Format((long)delay.TotalMicroseconds));
        _reportTo?.Tell(new RunFailed(reason));
    }
}

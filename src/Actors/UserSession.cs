using Akka.Actor;
using Akka.Persistence;
using Sessionization.Domain;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// One user's pending session, persisted. Per batch it receives one <see cref="ApplyBatch"/>, persists at most
/// one event and replies with the outcome; a batch it has applied already is answered from its state.
/// </summary>
public sealed class UserSession : ReceivePersistentActor, IWithUnboundedStash
{
    private readonly int _snapshotEvery;
    private UserSessionState _state;
    private int _eventsSinceSnapshot;
    private (IActorRef ReplyTo, object Failure)? _inFlight;

    public UserSession(long userId, int snapshotEvery, string journalPlugin = "", string snapshotPlugin = "")
    {
        _snapshotEvery = snapshotEvery;
        // Empty means the system's default plugin (tests use the in-memory and fault-injecting ones).
        JournalPluginId = journalPlugin;
        SnapshotPluginId = snapshotPlugin;
        _state = UserSessionState.Empty(userId);
        PersistenceId = PersistenceIdFor(userId);

        Recover<SnapshotOffer>(offer => _state = (UserSessionState)offer.Snapshot);
        Recover<IUserSessionEvent>(e =>
        {
            _state = _state.Apply(e);
            _eventsSinceSnapshot++;
        });

        Ready();
    }

    public override string PersistenceId { get; }

    public static string PersistenceIdFor(long userId) => $"user-session-{userId}";

    public static Props Props(long userId, int snapshotEvery, string journalPlugin = "", string snapshotPlugin = "") =>
        Akka.Actor.Props.Create(() => new UserSession(userId, snapshotEvery, journalPlugin, snapshotPlugin));

    private void Ready()
    {
        Command<ApplyBatch>(Handle);
        Command<RewindTo>(Rewind);
        Command<SaveSnapshotSuccess>(_ => { });
        Command<SaveSnapshotFailure>(_ => { });
    }

    private void Handle(ApplyBatch command)
    {
        var decided = _state.Decide(command.Batch, command.Visits);
        if (decided is null)
        {
            Sender.Tell(new BatchApplied(_state.UserId, command.Batch, _state.OutcomeOf(command.Batch)));
            PassivateAfterBatch();
            return;
        }

        var replyTo = Sender;
        _inFlight = (replyTo, new BatchApplyFailed(_state.UserId, command.Batch, ""));
        Persist(decided, e =>
        {
            _state = _state.Apply(e);
            _inFlight = null;
            replyTo.Tell(new BatchApplied(_state.UserId, e.Batch, _state.OutcomeOf(e.Batch)));
            SnapshotIfDue();
            PassivateAfterBatch();
        });
    }

    private void Rewind(RewindTo command)
    {
        if (_state.LastAppliedBatch < command.Batch)
        {
            Sender.Tell(new UserRewound(_state.UserId, command.Batch));
            PassivateAfterBatch();
            return;
        }

        // The state before the batch is in the journal, not in memory: a reader replays it from the start.
        var replyTo = Sender;
        Context.ActorOf(UserSessionReplay.Props(_state.UserId, command.Batch, JournalPluginId));
        Become(() =>
        {
            Command<UserSessionReplay.Replayed>(replayed => Persist(new SessionRewound(command.Batch, replayed.State), e =>
            {
                _state = _state.Apply(e);
                _inFlight = null;
                replyTo.Tell(new UserRewound(_state.UserId, command.Batch));
                SaveSnapshot(_state);
                _eventsSinceSnapshot = 0;
                Become(Ready);
                Stash.UnstashAll();
            }));
            Command<UserSessionReplay.ReplayFailed>(failed =>
            {
                replyTo.Tell(new UserRewindFailed(_state.UserId, command.Batch, failed.Reason));
                Become(Ready);
                Stash.UnstashAll();
            });
            CommandAny(_ => Stash.Stash());
        });
        _inFlight = (replyTo, new UserRewindFailed(_state.UserId, command.Batch, ""));
    }

    private void SnapshotIfDue()
    {
        if (++_eventsSinceSnapshot >= _snapshotEvery && _state.Open is not null)
        {
            SaveSnapshot(_state);
            _eventsSinceSnapshot = 0;
        }
    }

    private void PassivateAfterBatch()
    {
        // Every user stops after its batch: an open session may close without its user hearing of it, and the
        // journal answers a replay or the user's next batch. Memory then holds only the batch in flight.
        Context.Parent.Tell(new Passivate(_state.UserId));
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        ReportFailure($"{PersistenceId}: journal write failed: {cause.Message}");
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        ReportFailure($"{PersistenceId}: journal rejected the event: {cause.Message}");
        base.OnPersistRejected(cause, @event, sequenceNr);
        Become(Ready);
        Stash.UnstashAll();
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        // The command that started recovery is stashed and will be lost; the parent answers for it.
        Context.Parent.Tell(new UserSessionFailed(_state.UserId, $"recovery of {PersistenceId} failed: {reason.Message}"));
        base.OnRecoveryFailure(reason, message);
    }

    private void ReportFailure(string reason)
    {
        var failure = _inFlight?.Failure switch
        {
            BatchApplyFailed f => (object)(f with { Reason = reason }),
            UserRewindFailed f => f with { Reason = reason },
            _ => null,
        };
        if (failure is not null)
            _inFlight!.Value.ReplyTo.Tell(failure);
        _inFlight = null;
    }
}

/// <summary>
/// Reads a user's whole journal (no snapshot) to find the state before a batch, for a rewind. It shares the
/// user's persistence id but never writes, and stops as soon as it has answered.
/// </summary>
public sealed class UserSessionReplay : ReceivePersistentActor
{
    private readonly List<IUserSessionEvent> _journal = [];

    public UserSessionReplay(long userId, long batch, string journalPlugin)
    {
        PersistenceId = UserSession.PersistenceIdFor(userId);
        JournalPluginId = journalPlugin;
        Recover<IUserSessionEvent>(_journal.Add);
        Recover<RecoveryCompleted>(_ =>
        {
            Context.Parent.Tell(new Replayed(UserSessionState.Before(userId, batch, _journal)));
            Context.Stop(Self);
        });
    }

    public override string PersistenceId { get; }

    public override Recovery Recovery { get; } = new(SnapshotSelectionCriteria.None);

    public static Props Props(long userId, long batch, string journalPlugin) => Akka.Actor.Props.Create(() => new UserSessionReplay(userId, batch, journalPlugin));

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        Context.Parent.Tell(new ReplayFailed($"replaying {PersistenceId} failed: {reason.Message}"));
        base.OnRecoveryFailure(reason, message);
    }

    public sealed record Replayed(UserSessionState State);

    public sealed record ReplayFailed(string Reason);
}

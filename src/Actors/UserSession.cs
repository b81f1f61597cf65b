using Akka.Actor;
using Akka.Persistence;
using Sessionization.Domain;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// One user's pending session, persisted. Per batch it receives one <see cref="ApplyBatch"/>, persists at most
/// one event and replies with the outcome; a batch it has applied already is answered from its state.
/// </summary>
public sealed class UserSession : ReceivePersistentActor
{
    private readonly int _snapshotEvery;
    private UserSessionState _state;
    private int _eventsSinceSnapshot;
    private (IActorRef ReplyTo, long Batch)? _inFlight;

    public UserSession(long userId, int snapshotEvery)
    {
        _snapshotEvery = snapshotEvery;
        _state = UserSessionState.Empty(userId);
        PersistenceId = PersistenceIdFor(userId);

        Recover<SnapshotOffer>(offer => _state = (UserSessionState)offer.Snapshot);
        Recover<IUserSessionEvent>(e =>
        {
            _state = _state.Apply(e);
            _eventsSinceSnapshot++;
        });

        Command<ApplyBatch>(Handle);
        Command<SaveSnapshotSuccess>(_ => { });
        Command<SaveSnapshotFailure>(_ => { });
    }

    public override string PersistenceId { get; }

    public static string PersistenceIdFor(long userId) => $"user-session-{userId}";

    public static Props Props(long userId, int snapshotEvery) => Akka.Actor.Props.Create(() => new UserSession(userId, snapshotEvery));

    private void Handle(ApplyBatch command)
    {
        var decided = _state.Decide(command.Batch, command.Visits);
        if (decided is null)
        {
            Sender.Tell(new BatchApplied(_state.UserId, command.Batch, _state.OutcomeOf(command.Batch)));
            PassivateIfIdle();
            return;
        }

        var replyTo = Sender;
        _inFlight = (replyTo, command.Batch);
        Persist(decided, e =>
        {
            _state = _state.Apply(e);
            _inFlight = null;
            replyTo.Tell(new BatchApplied(_state.UserId, e.Batch, _state.OutcomeOf(e.Batch)));
            if (++_eventsSinceSnapshot >= _snapshotEvery && _state.Open is not null)
            {
                SaveSnapshot(_state);
                _eventsSinceSnapshot = 0;
            }

            PassivateIfIdle();
        });
    }

    private void PassivateIfIdle()
    {
        // A user without an open session needs no memory until it visits again; its journal still answers replays.
        if (_state.Open is null)
            Context.Parent.Tell(new Passivate(_state.UserId));
    }

    protected override void OnPersistFailure(Exception cause, object @event, long sequenceNr)
    {
        ReportFailure("journal write failed", cause);
        base.OnPersistFailure(cause, @event, sequenceNr);
    }

    protected override void OnPersistRejected(Exception cause, object @event, long sequenceNr)
    {
        ReportFailure("journal rejected the event", cause);
        base.OnPersistRejected(cause, @event, sequenceNr);
    }

    protected override void OnRecoveryFailure(Exception reason, object? message = null)
    {
        if (message is ApplyBatch command)
            Sender.Tell(new BatchApplyFailed(_state.UserId, command.Batch, $"recovery of {PersistenceId} failed: {reason.Message}"));
        base.OnRecoveryFailure(reason, message);
    }

    private void ReportFailure(string what, Exception cause)
    {
        if (_inFlight is { } inFlight)
            inFlight.ReplyTo.Tell(new BatchApplyFailed(_state.UserId, inFlight.Batch, $"{PersistenceId}: {what}: {cause.Message}"));
        _inFlight = null;
    }
}

using Akka.Actor;
using Sessionization.Actors.Serialization;
using Sessionization.Domain;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// One user's pending session, with durable state. Per batch it receives one <see cref="ApplyBatch"/> carrying
/// its state as recovered for the batch, decides the batch's one event, saves the state the event leads to and
/// replies with the outcome only once that state is durable. A batch it has applied already is answered from
/// its state, without a second save.
/// </summary>
public sealed class UserSession : UntypedActor
{
    private readonly IUserStateStore _store;
    private readonly List<(ApplyBatch Command, IActorRef Sender)> _heldWhileSaving = [];
    private UserSessionState _state;
    private bool _saving;

    public UserSession(long userId, IUserStateStore store)
    {
        _store = store;
        _state = UserSessionState.Empty(userId);
    }

    public static string PersistenceIdFor(long userId) => $"user-session-{userId}";

    // Built from the type, not from an expression: an expression would be compiled anew for every user.
    public static Props Props(long userId, IUserStateStore store) => Akka.Actor.Props.Create<UserSession>(userId, store);

    private sealed record Saved(ApplyBatch Command, UserSessionState State, IActorRef ReplyTo);

    private sealed record SaveFailed(ApplyBatch Command, string Reason, IActorRef ReplyTo);

    // A plain switch rather than ReceiveActor handlers: one of these actors is created per user per batch, and
    // building typed handlers for each would cost more than the batch's work for the user.
    protected override void OnReceive(object message)
    {
        try
        {
            Dispatch(message);
        }
        catch (Exception e)
        {
            // A state that cannot take the batch fails the batch with the reason, never silently.
            if (message is ApplyBatch failed)
                Sender.Tell(new BatchApplyFailed(_state.UserId, failed.Batch, $"{PersistenceIdFor(_state.UserId)}: {e.Message}"));
            Context.Stop(Self);
        }
    }

    private void Dispatch(object message)
    {
        switch (message)
        {
            case ApplyBatch command when _saving:
                _heldWhileSaving.Add((command, Sender));
                break;
            case ApplyBatch command:
                Handle(command, Sender);
                break;
            case Saved saved:
                _state = saved.State;
                saved.ReplyTo.Tell(new BatchApplied(_state.UserId, saved.Command.Batch, _state.OutcomeOf(saved.Command.Batch)));
                SavingEnded();
                Done();
                break;
            case SaveFailed failed:
                failed.ReplyTo.Tell(new BatchApplyFailed(_state.UserId, failed.Command.Batch, $"{PersistenceIdFor(_state.UserId)}: saving its state failed: {failed.Reason}"));
                SavingEnded();
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void Handle(ApplyBatch command, IActorRef replyTo)
    {
        // The recovered state is read for the whole batch at once; it is only newer than ours when this actor
        // has not seen the user yet.
        if (command.Recovered.LastAppliedBatch > _state.LastAppliedBatch)
            _state = command.Recovered;

        var decided = _state.Decide(command.Batch, command.Visits);
        if (decided is null)
        {
            replyTo.Tell(new BatchApplied(_state.UserId, command.Batch, _state.OutcomeOf(command.Batch)));
            Done();
            return;
        }

        var next = _state.Apply(decided);
        _saving = true;
        _store.SaveAsync(command.Batch, _state.UserId, SessionizationSerializer.StateToBinary(next)).PipeTo(
            Self,
            success: () => new Saved(command, next, replyTo),
            failure: e => new SaveFailed(command, Failures.Message(e), replyTo));
    }

    private void SavingEnded()
    {
        _saving = false;
        var held = _heldWhileSaving.ToList();
        _heldWhileSaving.Clear();
        foreach (var (command, sender) in held)
        {
            if (_saving)
                _heldWhileSaving.Add((command, sender));
            else
                Handle(command, sender);
        }
    }

    private void Done()
    {
        // Every user stops after its batch: an open session may close without its user hearing of it, and the
        // store answers the user's next batch. Memory then holds only the batch in flight.
        if (!_saving && _heldWhileSaving.Count == 0)
            Context.Stop(Self);
    }
}

using Akka.Actor;
using Sessionization.Actors.Serialization;
using Sessionization.Domain;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// One user's pending session, with durable state, for one batch: it is created with the batch's
/// <see cref="ApplyBatch"/>, which carries its state as recovered for the batch, decides the batch's one event,
/// saves the state the event leads to, replies with the outcome only once that state is durable, and stops.
/// A batch it has applied already (its recovered state says so) is answered from that state, without a
/// second save. Every user stops after its batch: an open session may close without its user hearing of it,
/// and the store answers the user's next batch; memory holds only the users of the batch in flight.
/// </summary>
public sealed class UserSession : UntypedActor
{
    private readonly IUserStateStore _store;
    private UserSessionState _state;

    public UserSession(long userId, IUserStateStore store)
    {
        _store = store;
        _state = UserSessionState.Empty(userId);
    }

    /// <summary>How the user's session is named in actor names and failure messages.</summary>
    public static string IdFor(long userId) => $"user-session-{userId}";

    // Built from the type, not from an expression: an expression would be compiled anew for every user.
    public static Props Props(long userId, IUserStateStore store) => Akka.Actor.Props.Create<UserSession>(userId, store);

    private sealed record Saved(ApplyBatch Command, UserSessionState State, IActorRef ReplyTo);

    private sealed record SaveFailed(ApplyBatch Command, string Reason, IActorRef ReplyTo);

    // A plain switch rather than ReceiveActor handlers: one of these actors is created per user per batch, and
    // building typed handlers for each would cost more than the batch's work for the user.
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case ApplyBatch command:
                Apply(command, Sender);
                break;
            case Saved saved:
                _state = saved.State;
                Answer(saved.ReplyTo, new BatchApplied(_state.UserId, saved.Command.Batch, _state.OutcomeOf(saved.Command.Batch)));
                break;
            case SaveFailed failed:
                Answer(failed.ReplyTo, new BatchApplyFailed(_state.UserId, failed.Command.Batch, $"{IdFor(_state.UserId)}: saving its state failed: {failed.Reason}"));
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void Apply(ApplyBatch command, IActorRef replyTo)
    {
        UserSessionState next;
        byte[] bytes;
        try
        {
            if (command.Recovered.LastAppliedBatch > _state.LastAppliedBatch)
                _state = command.Recovered;
            var decided = _state.Decide(command.Batch, command.Visits);
            if (decided is null)
            {
                Answer(replyTo, new BatchApplied(_state.UserId, command.Batch, _state.OutcomeOf(command.Batch)));
                return;
            }

            next = _state.Apply(decided);
            bytes = SessionizationSerializer.StateToBinary(next);
        }
        catch (Exception e)
        {
            // A recovered state that cannot take the batch fails the batch with the reason, never silently.
            Answer(replyTo, new BatchApplyFailed(_state.UserId, command.Batch, $"{IdFor(_state.UserId)}: {e.Message}"));
            return;
        }

        _store.SaveAsync(command.Batch, _state.UserId, bytes).PipeTo(
            Self,
            success: () => new Saved(command, next, replyTo),
            failure: e => new SaveFailed(command, Failures.Message(e), replyTo));
    }

    private void Answer(IActorRef replyTo, object answer)
    {
        replyTo.Tell(answer);
        Context.Stop(Self);
    }
}

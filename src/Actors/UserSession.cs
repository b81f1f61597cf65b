using Akka.Actor;
using Sessionization.Actors.Serialization;
using Sessionization.Domain;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// One user's pending session, with durable state, for one batch: it is created with the batch's
/// <see cref="ApplyBatch"/>, which carries its state as recovered for the batch, decides the batch's one event,
/// hands the state the event leads to to the store's next group commit, answers with the outcome and stops.
/// The answer is the batch's to make durable: the batch reaches its output tables only after the store has
/// committed every state saved for it (<see cref="IUserStateStore.FlushAsync"/>), so a user never waits on
/// a disk flush of its own. A batch it has applied already (its recovered state says so) is answered from
/// that state, without a second save. Every user stops after its batch: an open session may close without
/// its user hearing of it, and the store answers the user's next batch; memory holds only the users of the
/// batch in flight.
/// </summary>
public sealed class UserSession : UntypedActor
{
    private readonly IUserStateStore _store;
    private readonly long _userId;

    public UserSession(long userId, IUserStateStore store)
    {
        _store = store;
        _userId = userId;
    }

    /// <summary>How the user's session is named in actor names and failure messages.</summary>
    public static string IdFor(long userId) => $"user-session-{userId}";

    // Built from the type, not from an expression: an expression would be compiled anew for every user.
    public static Props Props(long userId, IUserStateStore store) => Akka.Actor.Props.Create<UserSession>(userId, store);

    // A plain switch rather than ReceiveActor handlers: one of these actors is created per user per batch, and
    // building typed handlers for each would cost more than the batch's work for the user.
    protected override void OnReceive(object message)
    {
        if (message is ApplyBatch command)
            Sender.Tell(Apply(command));
        else
            Unhandled(message);
        Context.Stop(Self);
    }

    private object Apply(ApplyBatch command)
    {
        try
        {
            var state = command.Recovered;
            var decided = state.Decide(command.Batch, command.Visits);
            if (decided is not null)
            {
                state = state.Apply(decided);
                _store.Save(command.Batch, _userId, UserStateCodec.Encode(state));
            }

            return new BatchApplied(_userId, command.Batch, state.OutcomeOf(command.Batch));
        }
        catch (Exception e)
        {
            // A recovered state that cannot take the batch fails the batch with the reason, never silently.
            return new BatchApplyFailed(_userId, command.Batch, $"{IdFor(_userId)}: {e.Message}");
        }
    }
}

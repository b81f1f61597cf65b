using Akka.Actor;
using Akka.Cluster.Sharding;
using Sessionization.Actors.Serialization;
using Sessionization.Domain;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// One user's session entity. It starts with the first batch that brings the user visits, taking its state as
/// recovered for that batch, and then lives while the session is open: each later batch with visits is decided
/// and applied against the state it holds in memory, without reading the store. Each batch it takes part in
/// queues its one new state for the store's next group commit and answers with the outcome; the batch reaches
/// the output tables only after the store has committed every state saved for it
/// (<see cref="IUserStateStore.FlushAsync"/>), so an entity never waits on a disk flush of its own. It
/// passivates when its session closes (<see cref="CloseSession"/>) or, through its shard, after
/// <c>passivate-after</c> batches without a visit. A batch that fails after entities applied it stops them all
/// (<see cref="ResetEntities"/>): memory never answers a retry with a state the store may not have.
/// </summary>
public sealed class UserSession : UntypedActor
{
    private readonly IUserStateStore _store;
    private long _userId;
    private UserSessionState? _state;

    public UserSession(IUserStateStore store)
    {
        _store = store;
    }

    /// <summary>How the user's session is named in actor names and failure messages.</summary>
    public static string IdFor(long userId) => $"user-session-{userId}";

    /// <summary>
    /// One Props for all of a shard's entities: the entity learns its user from its first message, so starting one
    /// needs neither reflection over constructor arguments nor a factory compiled per user.
    /// </summary>
    public static Props Props(IUserStateStore store) => Akka.Actor.Props.Create(() => new UserSession(store));

    // A plain switch rather than ReceiveActor handlers: a batch starts an entity for each new user, and building
    // typed handlers for each would cost more than the batch's work for the user.
    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case ApplyBatch command:
                Sender.Tell(Apply(command));
                break;
            case CloseSession close:
                Close(close.Batch);
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private object Apply(ApplyBatch command)
    {
        _userId = command.UserId;
        try
        {
            var state = command.Recovered ?? _state
                ?? throw new InvalidOperationException($"its session is open but its state is not in memory for batch {command.Batch}");
            var decided = state.Decide(command.Batch, command.Visits);
            if (decided is not null)
            {
                state = state.Apply(decided);
                _store.Save(command.Batch, state);
            }

            _state = state;
            return new BatchApplied(_userId, command.Batch, state.OutcomeOf(command.Batch));
        }
        catch (Exception e)
        {
            // A state that cannot take the batch fails the batch with the reason, never silently.
            return new BatchApplyFailed(_userId, command.Batch, $"{IdFor(_userId)}: {e.Message}");
        }
    }

    private void Close(long batch)
    {
        // The session ends in memory as it does in the store's reading of the last saved state (open until the
        // batch after it, closed from then on), so nothing is saved; the entity then has nothing left to hold.
        if (_state?.Decide(batch, []) is SessionClosed closed)
            _state = _state.Apply(closed);
        Context.Parent.Tell(new Passivate(PoisonPill.Instance));
    }
}

using Akka.Actor;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Parent of the per-user session actors. A user's actor lives for one batch: it is created with the batch's
/// <see cref="ApplyBatch"/>, answers the batch's executor itself and stops. A batch sends each user one
/// message and batches run one after another, so a user has one actor at work at a time (an abandoned
/// attempt's actor may still be finishing its save, which the retry's identical save then supersedes).
/// </summary>
public sealed class UserSessionParent : UntypedActor
{
    private readonly IUserStateStore _store;
    private long _created;

    public UserSessionParent(IUserStateStore store)
    {
        _store = store;
    }

    public static Props Props(IUserStateStore store) => Akka.Actor.Props.Create(() => new UserSessionParent(store));

    protected override void OnReceive(object message)
    {
        if (message is not ApplyBatch apply)
        {
            Unhandled(message);
            return;
        }

        // Named by user and incarnation: an actor from an abandoned attempt at a batch may still be stopping.
        var child = Context.ActorOf(UserSession.Props(apply.UserId, _store), $"{UserSession.IdFor(apply.UserId)}-{++_created}");
        child.Forward(apply);
    }

    // A user actor answers its own failures; anything it did not catch stops it rather than restarting it
    // with its batch lost.
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(Decider.From(Directive.Stop));
}

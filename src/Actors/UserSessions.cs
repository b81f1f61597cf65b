using Akka.Actor;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Parent of the per-user session actors: creates a user's actor on its first message and stops it when it
/// asks to passivate, holding back messages that arrive while it stops so none reaches a dying actor.
/// </summary>
public sealed class UserSessions : ReceiveActor
{
    private readonly int _snapshotEvery;
    private readonly Dictionary<long, IActorRef> _live = [];
    private readonly Dictionary<IActorRef, long> _users = [];
    private readonly Dictionary<long, List<(object Message, IActorRef Sender)>> _stopping = [];

    public UserSessions(int snapshotEvery)
    {
        _snapshotEvery = snapshotEvery;

        Receive<ApplyBatch>(Deliver);
        Receive<Passivate>(p =>
        {
            if (_live.TryGetValue(p.UserId, out var child) && child.Equals(Sender) && !_stopping.ContainsKey(p.UserId))
            {
                _stopping[p.UserId] = [];
                Context.Stop(child);
            }
        });
        Receive<Terminated>(t =>
        {
            if (!_users.Remove(t.ActorRef, out var userId))
                return;
            _live.Remove(userId);
            if (!_stopping.Remove(userId, out var held))
                return;
            foreach (var (message, sender) in held)
                ChildFor(userId).Tell(message, sender);
        });
    }

    public static Props Props(int snapshotEvery) => Akka.Actor.Props.Create(() => new UserSessions(snapshotEvery));

    private void Deliver(ApplyBatch message)
    {
        if (_stopping.TryGetValue(message.UserId, out var held))
            held.Add((message, Sender));
        else
            ChildFor(message.UserId).Forward(message);
    }

    private IActorRef ChildFor(long userId)
    {
        if (_live.TryGetValue(userId, out var child))
            return child;
        child = Context.ActorOf(UserSession.Props(userId, _snapshotEvery), UserSession.PersistenceIdFor(userId));
        Context.Watch(child);
        _live[userId] = child;
        _users[child] = userId;
        return child;
    }
}

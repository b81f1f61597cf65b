using Akka.Actor;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Parent of the per-user session actors: creates a user's actor on its first message and stops it when it
/// asks to passivate, holding back messages that arrive while it stops so none reaches a dying actor. If a
/// user's actor fails before answering, the parent answers for it so no batch waits forever.
/// </summary>
public sealed class UserSessions : ReceiveActor
{
    private readonly int _snapshotEvery;
    private readonly string _journalPlugin;
    private readonly string _snapshotPlugin;
    private readonly Dictionary<long, IActorRef> _live = [];
    private readonly Dictionary<IActorRef, long> _users = [];
    private readonly Dictionary<long, List<(IUserSessionMessage Message, IActorRef Sender)>> _stopping = [];
    private readonly Dictionary<long, (IUserSessionMessage Message, IActorRef Sender)> _lastDelivered = [];

    public UserSessions(int snapshotEvery, string journalPlugin = "", string snapshotPlugin = "")
    {
        _snapshotEvery = snapshotEvery;
        _journalPlugin = journalPlugin;
        _snapshotPlugin = snapshotPlugin;

        Receive<ApplyBatch>(Deliver);
        Receive<RewindTo>(Deliver);
        Receive<Passivate>(p =>
        {
            if (_live.TryGetValue(p.UserId, out var child) && child.Equals(Sender) && !_stopping.ContainsKey(p.UserId))
            {
                _stopping[p.UserId] = [];
                Context.Stop(child);
            }
        });
        Receive<UserSessionFailed>(f => AnswerFor(f.UserId, f.Reason));
        Receive<Terminated>(t =>
        {
            if (!_users.Remove(t.ActorRef, out var userId))
                return;
            _live.Remove(userId);
            if (!_stopping.Remove(userId, out var held))
            {
                AnswerFor(userId, $"{UserSession.PersistenceIdFor(userId)} stopped unexpectedly");
                return;
            }

            _lastDelivered.Remove(userId);
            foreach (var (message, sender) in held)
                Send(userId, message, sender);
        });
    }

    public static Props Props(int snapshotEvery, string journalPlugin = "", string snapshotPlugin = "") =>
        Akka.Actor.Props.Create(() => new UserSessions(snapshotEvery, journalPlugin, snapshotPlugin));

    private void Deliver(IUserSessionMessage message)
    {
        if (_stopping.TryGetValue(message.UserId, out var held))
            held.Add((message, Sender));
        else
            Send(message.UserId, message, Sender);
    }

    private void Send(long userId, IUserSessionMessage message, IActorRef sender)
    {
        _lastDelivered[userId] = (message, sender);
        ChildFor(userId).Tell(message, sender);
    }

    /// <summary>Answers the last request delivered to a failed user actor with a failure, once.</summary>
    private void AnswerFor(long userId, string reason)
    {
        if (!_lastDelivered.Remove(userId, out var last))
            return;
        object failure = last.Message switch
        {
            ApplyBatch a => new BatchApplyFailed(userId, a.Batch, reason),
            RewindTo r => new UserRewindFailed(userId, r.Batch, reason),
            _ => new BatchApplyFailed(userId, -1, reason),
        };
        last.Sender.Tell(failure);
    }

    private IActorRef ChildFor(long userId)
    {
        if (_live.TryGetValue(userId, out var child))
            return child;
        child = Context.ActorOf(UserSession.Props(userId, _snapshotEvery, _journalPlugin, _snapshotPlugin), UserSession.PersistenceIdFor(userId));
        Context.Watch(child);
        _live[userId] = child;
        _users[child] = userId;
        return child;
    }
}

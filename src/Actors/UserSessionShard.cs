using System.Globalization;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// One shard of the <see cref="UserSessionRegion"/>: the parent of its users' live entities. It starts an entity
/// for a user's first message, passes later ones to the same entity, stops an entity that asks to passivate
/// (Akka.Cluster.Sharding's <see cref="Passivate"/>) and those without a message for <c>passivate-after</c>
/// batches, and gathers the answers to each share of a batch it was given.
/// </summary>
public sealed class UserSessionShard : UntypedActor
{
    private readonly Dictionary<long, Entity> _entities = [];
    private readonly Dictionary<long, long> _awaiting = [];
    private readonly Dictionary<long, Part> _parts = [];
    private readonly Props _entityProps;
    private readonly int _passivateAfter;
    private readonly EntityCounters _counters;
    private long _started;
    private long _latestBatch = long.MinValue;

    public UserSessionShard(IUserStateStore store, int passivateAfter, EntityCounters counters)
    {
        _entityProps = UserSession.Props(store);
        _passivateAfter = passivateAfter;
        _counters = counters;
    }

    public static Props Props(IUserStateStore store, int passivateAfter, EntityCounters counters) =>
        Akka.Actor.Props.Create(() => new UserSessionShard(store, passivateAfter, counters));

    /// <summary>The shard's share of a region's <see cref="DeliverToUsers"/>.</summary>
    public sealed record Deliver(long Id, long Batch, IReadOnlyList<IUserSessionMessage> Messages);

    public sealed record Delivered(long Id, IReadOnlyList<BatchApplied> Applied, IReadOnlyList<BatchApplyFailed> Failed);

    private record struct Entity(IActorRef Ref, long LastBatch);

    private sealed class Part(IActorRef replyTo, int remaining)
    {
        public IActorRef ReplyTo { get; } = replyTo;

        public int Remaining { get; set; } = remaining;

        public List<BatchApplied> Applied { get; } = [];

        public List<BatchApplyFailed> Failed { get; } = [];
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case BatchApplied applied:
                Answered(applied.UserId, p => p.Applied.Add(applied));
                break;
            case BatchApplyFailed failed:
                Answered(failed.UserId, p => p.Failed.Add(failed));
                break;
            case Deliver deliver:
                OnDeliver(deliver);
                break;
            case CloseSession close:
                if (_entities.ContainsKey(close.UserId))
                    _entities[close.UserId].Ref.Forward(close);
                break;
            case IUserSessionMessage single:
                EntityFor(single.UserId, BatchOf(single)).Forward(single);
                break;
            case Passivate passivate:
                OnPassivate(passivate);
                break;
            case ResetEntities:
                foreach (var entity in _entities.Values)
                    Context.Stop(entity.Ref);
                _counters.Stopped(_entities.Count);
                _entities.Clear();
                _awaiting.Clear();
                _parts.Clear();
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private static long BatchOf(IUserSessionMessage message) => message switch
    {
        ApplyBatch a => a.Batch,
        CloseSession c => c.Batch,
        _ => long.MinValue,
    };

    private void OnDeliver(Deliver deliver)
    {
        PassivateIdle(deliver.Batch);
        var part = new Part(Sender, 0);
        foreach (var m in deliver.Messages)
        {
            switch (m)
            {
                case ApplyBatch apply:
                    EntityFor(apply.UserId, apply.Batch).Tell(apply, Self);
                    _awaiting[apply.UserId] = deliver.Id;
                    part.Remaining++;
                    break;
                case CloseSession close:
                    // Only a live entity has anything to let go of; a user without one needs no message at all.
                    if (_entities.TryGetValue(close.UserId, out var entity))
                        entity.Ref.Tell(close, Self);
                    break;
            }
        }

        if (part.Remaining == 0)
            Sender.Tell(new Delivered(deliver.Id, part.Applied, part.Failed));
        else
            _parts[deliver.Id] = part;
    }

    private void Answered(long userId, Action<Part> record)
    {
        // An answer counts only from the user's current entity: one stopped by a reset may still be answering.
        if (!_entities.TryGetValue(userId, out var entity) || !entity.Ref.Equals(Sender) || !_awaiting.Remove(userId, out var id)
            || !_parts.TryGetValue(id, out var part))
            return;
        record(part);
        if (--part.Remaining > 0)
            return;
        _parts.Remove(id);
        part.ReplyTo.Tell(new Delivered(id, part.Applied, part.Failed));
    }

    private IActorRef EntityFor(long userId, long batch)
    {
        if (_entities.TryGetValue(userId, out var entity))
        {
            _entities[userId] = entity with { LastBatch = Math.Max(entity.LastBatch, batch) };
            return entity.Ref;
        }

        // Named by user and incarnation: an earlier incarnation may still be stopping.
        var started = Context.ActorOf(_entityProps, $"{UserSession.IdFor(userId)}.{++_started}");
        _entities[userId] = new Entity(started, batch);
        _counters.Started();
        return started;
    }

    private void OnPassivate(Passivate passivate)
    {
        if (UserOf(Sender) is { } userId && _entities.TryGetValue(userId, out var entity) && entity.Ref.Equals(Sender))
        {
            _entities.Remove(userId);
            _counters.Stopped();
        }

        Sender.Tell(passivate.StopMessage);
    }

    /// <summary>Entities not sent anything for <c>passivate-after</c> batches before <paramref name="batch"/> stop.</summary>
    private void PassivateIdle(long batch)
    {
        if (batch <= _latestBatch)
            return;
        _latestBatch = batch;
        var idle = new List<long>();
        foreach (var (userId, entity) in _entities)
        {
            if (batch - 1 - entity.LastBatch >= _passivateAfter)
                idle.Add(userId);
        }

        foreach (var userId in idle)
        {
            Context.Stop(_entities[userId].Ref);
            _entities.Remove(userId);
        }

        _counters.Stopped(idle.Count);
    }

    private static long? UserOf(IActorRef entity)
    {
        var name = entity.Path.Name;
        var prefix = UserSession.IdFor(0).Length - 1;
        var dot = name.LastIndexOf('.');
        return dot > prefix && long.TryParse(name.AsSpan(prefix, dot - prefix), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var id) ? id : null;
    }

    // An entity answers its own failures; anything it did not catch stops it rather than restarting it with its
    // state lost, and its user recovers from the store after the batch fails.
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(Decider.From(Directive.Stop));
}

using System.Globalization;
using Akka.Actor;
using Akka.Cluster.Sharding;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Routes user session messages by user id, as a cluster shard region would: the entity id is the user id and
/// the shard id comes from Akka.Cluster.Sharding's <see cref="HashCodeMessageExtractor"/>, so the same
/// <see cref="UserSession"/> entity can be hosted by a <c>ShardRegion</c> on several nodes without change. Here
/// the region is local: one child per shard, each the parent of its users' entities (spreading entities over
/// many parents keeps starting and stopping them cheap). A single <see cref="IUserSessionMessage"/> is forwarded
/// to its entity, which answers the sender; a <see cref="DeliverToUsers"/> is split by shard and answered once,
/// with every answer in it.
/// </summary>
public sealed class UserSessionRegion : UntypedActor
{
    public const int DefaultShards = 100;

    private readonly IMessageExtractor _extractor;
    private readonly Dictionary<string, IActorRef> _shards = [];
    private readonly Dictionary<long, Delivery> _deliveries = [];
    private readonly EntityCounters _counters = new();
    private readonly IUserStateStore _store;
    private readonly int _passivateAfter;
    private long _nextDelivery;

    public UserSessionRegion(IUserStateStore store, int shards, int passivateAfter)
    {
        _store = store;
        _passivateAfter = passivateAfter;
        _extractor = new UserSessionMessageExtractor(shards);
    }

    public static Props Props(IUserStateStore store, int shards = DefaultShards, int passivateAfter = 1) =>
        Akka.Actor.Props.Create(() => new UserSessionRegion(store, shards, passivateAfter));

    private sealed class Delivery(IActorRef replyTo, long batch, int parts)
    {
        public IActorRef ReplyTo { get; } = replyTo;

        public long Batch { get; } = batch;

        public int Parts { get; set; } = parts;

        public List<BatchApplied> Applied { get; } = [];

        public List<BatchApplyFailed> Failed { get; } = [];
    }

    protected override void OnReceive(object message)
    {
        switch (message)
        {
            case IUserSessionMessage single:
                ShardFor(ShardOf(single)).Forward(single);
                break;
            case DeliverToUsers delivery:
                Deliver(delivery);
                break;
            case UserSessionShard.Delivered part:
                Collect(part);
                break;
            case ResetEntities reset:
                // Deliveries under way belong to the attempt being abandoned; their askers are gone or will time out.
                _deliveries.Clear();
                foreach (var shard in _shards.Values)
                    shard.Tell(reset);
                break;
            case GetRegionStats:
                Sender.Tell(new RegionStats(_counters.Live, _counters.Incarnations));
                break;
            default:
                Unhandled(message);
                break;
        }
    }

    private void Deliver(DeliverToUsers delivery)
    {
        var byShard = new Dictionary<string, List<IUserSessionMessage>>();
        foreach (var m in delivery.Messages)
        {
            var shard = ShardOf(m);
            if (!byShard.TryGetValue(shard, out var list))
                byShard[shard] = list = [];
            list.Add(m);
        }

        if (byShard.Count == 0)
        {
            Sender.Tell(new UsersAnswered(delivery.Batch, [], []));
            return;
        }

        var id = ++_nextDelivery;
        _deliveries[id] = new Delivery(Sender, delivery.Batch, byShard.Count);
        foreach (var (shard, messages) in byShard)
            ShardFor(shard).Tell(new UserSessionShard.Deliver(id, delivery.Batch, messages));
    }

    private void Collect(UserSessionShard.Delivered part)
    {
        if (!_deliveries.TryGetValue(part.Id, out var delivery))
            return;
        delivery.Applied.AddRange(part.Applied);
        delivery.Failed.AddRange(part.Failed);
        if (--delivery.Parts > 0)
            return;
        _deliveries.Remove(part.Id);
        delivery.ReplyTo.Tell(new UsersAnswered(delivery.Batch, delivery.Applied, delivery.Failed));
    }

    private string ShardOf(IUserSessionMessage message) => _extractor.ShardId(_extractor.EntityId(message)!, message);

    private IActorRef ShardFor(string shardId)
    {
        if (!_shards.TryGetValue(shardId, out var shard))
        {
            shard = Context.ActorOf(UserSessionShard.Props(_store, _passivateAfter, _counters), $"shard-{shardId}");
            _shards[shardId] = shard;
        }

        return shard;
    }

    // A shard holds only routing; if it fails, its entities' memory is suspect, so it starts empty again and its
    // users recover from the store at their next batch (a batch waiting on it fails on its timeout).
    protected override SupervisorStrategy SupervisorStrategy() => new OneForOneStrategy(Decider.From(Directive.Restart));
}

/// <summary>The entity id of a user session message is its user id; the shard id is the extractor's hash of it.</summary>
public sealed class UserSessionMessageExtractor(int shards) : HashCodeMessageExtractor(shards)
{
    public override string? EntityId(object message) =>
        message is IUserSessionMessage m ? m.UserId.ToString(CultureInfo.InvariantCulture) : null;
}

/// <summary>Counts shared by a region's shards, for the region's stats.</summary>
public sealed class EntityCounters
{
    private long _live;
    private long _incarnations;

    public long Live => Interlocked.Read(ref _live);

    public long Incarnations => Interlocked.Read(ref _incarnations);

    public void Started()
    {
        Interlocked.Increment(ref _live);
        Interlocked.Increment(ref _incarnations);
    }

    public void Stopped(long count = 1) => Interlocked.Add(ref _live, -count);
}

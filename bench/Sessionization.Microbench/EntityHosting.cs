using System.Diagnostics;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Sessionization.Actors;
using Sessionization.Domain;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Microbench;

/// <summary>
/// The same <see cref="UserSession"/> entities hosted two ways in one process: the product's local
/// <see cref="UserSessionRegion"/>, and Akka.Cluster.Sharding's <c>ShardRegion</c> in a cluster of one, both keyed by
/// <see cref="UserSessionMessageExtractor"/>. It prints the start-up to a ready region and each batch's time for
/// <c>users</c> users with one visit each in every batch (the first batch starts every entity, later ones reach
/// live entities), plus managed memory per live entity. The store is a no-op, so only hosting is measured.
/// </summary>
public static class EntityHosting
{
    public static async Task RunAsync(int users, int batches)
    {
        Console.WriteLine($"entity hosting: {users:N0} users, {batches} batches, one visit per user per batch, {Environment.ProcessorCount} cores");
        foreach (var cluster in new[] { false, true })
        {
            var clock = Stopwatch.StartNew();
            var system = ActorSystem.Create("hosting", cluster ? ClusterConfig : LocalConfig);
            IActorRef region;
            if (cluster)
            {
                var self = Cluster.Get(system);
                var up = new TaskCompletionSource();
                self.RegisterOnMemberUp(() => up.TrySetResult());
                self.Join(self.SelfAddress);
                await up.Task;
                region = await ClusterSharding.Get(system).StartAsync(
                    "user-session",
                    UserSession.Props(NoStore.Instance),
                    ClusterShardingSettings.Create(system),
                    new UserSessionMessageExtractor(UserSessionRegion.DefaultShards));
            }
            else
            {
                region = system.ActorOf(UserSessionRegion.Props(NoStore.Instance), "user-sessions");
            }

            var startup = clock.Elapsed;
            var times = new List<TimeSpan>();
            long bytesPerEntity = 0;
            for (var batch = 0L; batch < batches; batch++)
            {
                var messages = new List<IUserSessionMessage>(users);
                for (var user = 1; user <= users; user++)
                {
                    var visits = new[] { new PageVisit((batch * 1_000_000) + user, "page_1.html") };
                    messages.Add(new ApplyBatch(user, batch, visits, batch == 0 ? UserSessionState.Empty(user) : null));
                }

                var before = GC.GetTotalMemory(forceFullCollection: true);
                clock.Restart();
                if (cluster)
                    await SendOneByOne(system, region, messages);
                else
                    await SendInShares(region, batch, messages);
                times.Add(clock.Elapsed);
                if (batch == 0)
                {
                    messages.Clear();
                    bytesPerEntity = (GC.GetTotalMemory(forceFullCollection: true) - before) / users;
                }
            }

            Console.WriteLine(
                $"{(cluster ? "cluster of one (ShardRegion)" : "local region (product)"),-30} start-up {startup.TotalMilliseconds,6:F0} ms; " +
                $"batches {string.Join(", ", times.Select(t => $"{t.TotalMilliseconds:F0} ms"))}; ~{bytesPerEntity:N0} bytes per live entity");
            await system.Terminate();
        }
    }

    // As a batch does: shares of users, a few in flight, each answered once by the region.
    private static async Task SendInShares(IActorRef region, long batch, List<IUserSessionMessage> messages)
    {
        const int share = 2_000;
        var inFlight = new List<Task<UsersAnswered>>();
        for (var i = 0; i < messages.Count; i += share)
        {
            inFlight.Add(region.Ask<UsersAnswered>(new DeliverToUsers(batch, messages.GetRange(i, Math.Min(share, messages.Count - i))), TimeSpan.FromMinutes(5)));
            if (inFlight.Count == 4)
            {
                await inFlight[0];
                inFlight.RemoveAt(0);
            }
        }

        await Task.WhenAll(inFlight);
    }

    // A ShardRegion takes one message per entity; a counting actor gathers the answers. The same bound on users at
    // work as the local region's (4 shares of 2,000), which also keeps the region's buffer (for messages to shards
    // not yet started) from overflowing.
    private static async Task SendOneByOne(ActorSystem system, IActorRef region, List<IUserSessionMessage> messages)
    {
        const int window = 8_000;
        for (var i = 0; i < messages.Count; i += window)
        {
            var count = Math.Min(window, messages.Count - i);
            var done = new TaskCompletionSource();
            var counter = system.ActorOf(Props.Create(() => new Counter(count, done)));
            for (var j = i; j < i + count; j++)
                region.Tell(messages[j], counter);
            await done.Task;
            system.Stop(counter);
        }
    }

    private sealed class Counter(int expected, TaskCompletionSource done) : UntypedActor
    {
        private int _remaining = expected;

        protected override void OnReceive(object message)
        {
            if (--_remaining == 0)
                done.TrySetResult();
        }
    }

    private static Config LocalConfig => ConfigurationFactory.ParseString("akka.loglevel = WARNING");

    private static Config ClusterConfig => ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.actor.provider = cluster
        akka.remote.dot-netty.tcp.hostname = 127.0.0.1
        akka.remote.dot-netty.tcp.port = 0
        akka.cluster.sharding.remember-entities = off
        akka.cluster.sharding.passivate-idle-entity-after = off
        """);

    private sealed class NoStore : IUserStateStore
    {
        public static NoStore Instance { get; } = new();

        public void Save(long batch, UserSessionState state)
        {
        }

        public Task FlushAsync(long batch) => Task.CompletedTask;

        public Task<Dictionary<long, StoredUserState>> LoadForBatchAsync(long batch, CancellationToken cancellationToken = default) => Task.FromResult(new Dictionary<long, StoredUserState>());

        public Task<long> RewindAsync(long batch) => Task.FromResult(0L);

        public Task PruneBeforeAsync(long batch) => Task.CompletedTask;

        public void Dispose()
        {
        }
    }
}

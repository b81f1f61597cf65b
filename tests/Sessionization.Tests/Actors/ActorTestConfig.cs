using Akka.Configuration;

namespace Sessionization.Tests.Actors;

public static class ActorTestConfig
{
    /// <summary>In-memory journal and snapshot store, with the product's serializer bound as in production.</summary>
    public static Config InMemory { get; } = ConfigurationFactory.ParseString("""
        akka.loglevel = WARNING
        akka.persistence.journal.plugin = "akka.persistence.journal.inmem"
        akka.persistence.snapshot-store.plugin = "akka.persistence.snapshot-store.inmem"
        akka.actor.serializers.sessionization = "Sessionization.Actors.Serialization.SessionizationSerializer, Sessionization.Actors"
        akka.actor.serialization-bindings { "Sessionization.Domain.IPersistedRecord, Sessionization.Domain" = sessionization }
        sessionization {
          base-dir = "./data"
          max-files-per-batch = 1000
          poll-interval = 1s
          batch-timeout = 60s
          checkpoints.retain = 100
          # A small window, so that the simulations send a batch's users in several rounds.
          user-sessions.max-in-flight = 2
        }
        """);
}

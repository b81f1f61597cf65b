using Sessionization.Domain;
using Sessionization.Persistence.Tables;

namespace Sessionization.Actors;

/// <summary>The sessionizer's settings, read once from configuration (HOCON defaults, then environment and flags).</summary>
public sealed record SessionizationSettings(
    string BaseDirectory,
    int MaxFilesPerBatch,
    TimeSpan PollInterval,
    int RetainCheckpoints,
    TimeSpan BatchTimeout,
    BadRowsMode BadRows = BadRowsMode.Fail,
    int MaxUsersInFlight = 8000)
{
    /// <summary>The pipeline whose state this is (see <see cref="Pipelines"/>); the coordinator's journal is kept under its id.</summary>
    public PipelineIdentity? Pipeline { get; init; }

    /// <summary>Commits between Delta checkpoints of the output tables (<c>sessionization.tables.checkpoint-interval</c>).</summary>
    public int CheckpointInterval { get; init; } = Persistence.Delta.DeltaTable.DefaultCheckpointInterval;

    /// <summary>Shards of the user session region (<c>sessionization.user-sessions.shards</c>).</summary>
    public int UserSessionShards { get; init; } = UserSessionRegion.DefaultShards;

    /// <summary>Batches without a visit after which a live entity passivates (<c>sessionization.user-sessions.passivate-after</c>).</summary>
    public int PassivateAfter { get; init; } = 1;

    public static SessionizationSettings FromConfig(Akka.Configuration.Config config)
    {
        var c = config.GetConfig("sessionization");
        return new SessionizationSettings(
            c.GetString("base-dir"),
            c.GetInt("max-files-per-batch"),
            c.GetTimeSpan("poll-interval"),
            c.GetInt("checkpoints.retain"),
            c.GetTimeSpan("batch-timeout"),
            c.GetString("bad-rows", "fail").ToLowerInvariant() switch
            {
                "fail" => BadRowsMode.Fail,
                "quarantine" => BadRowsMode.Quarantine,
                var other => throw new Akka.Configuration.ConfigurationException($"sessionization.bad-rows '{other}' is not fail or quarantine"),
            },
            c.GetInt("user-sessions.max-in-flight", 8000))
        {
            UserSessionShards = Positive(c, "user-sessions.shards", UserSessionRegion.DefaultShards),
            PassivateAfter = Positive(c, "user-sessions.passivate-after", 1),
            CheckpointInterval = c.GetInt("tables.checkpoint-interval", Persistence.Delta.DeltaTable.DefaultCheckpointInterval),
        };
    }

    private static int Positive(Akka.Configuration.Config c, string path, int fallback)
    {
        var value = c.GetInt(path, fallback);
        return value >= 1 ? value : throw new Akka.Configuration.ConfigurationException($"sessionization.{path} must be at least 1, not {value}");
    }
}

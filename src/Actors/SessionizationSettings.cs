namespace Sessionization.Actors;

/// <summary>The sessionizer's settings, read once from configuration (HOCON defaults, then environment and flags).</summary>
public sealed record SessionizationSettings(
    string BaseDirectory,
    int MaxFilesPerBatch,
    TimeSpan PollInterval,
    int RetainCheckpoints,
    int SnapshotEvery,
    TimeSpan BatchTimeout)
{
    public static SessionizationSettings FromConfig(Akka.Configuration.Config config)
    {
        var c = config.GetConfig("sessionization");
        return new SessionizationSettings(
            c.GetString("base-dir"),
            c.GetInt("max-files-per-batch"),
            c.GetTimeSpan("poll-interval"),
            c.GetInt("checkpoints.retain"),
            c.GetInt("user-sessions.snapshot-every"),
            c.GetTimeSpan("batch-timeout"));
    }
}

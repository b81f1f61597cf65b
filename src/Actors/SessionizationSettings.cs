namespace Sessionization.Actors;

/// <summary>The sessionizer's settings, read once from configuration (HOCON defaults, then environment and flags).</summary>
public sealed record SessionizationSettings(
    string BaseDirectory,
    int MaxFilesPerBatch,
    TimeSpan PollInterval,
    int RetainCheckpoints,
    int SnapshotEvery,
    TimeSpan BatchTimeout,
    Sessionization.Persistence.Tables.BadRowsMode BadRows = Sessionization.Persistence.Tables.BadRowsMode.Fail)
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
            c.GetTimeSpan("batch-timeout"),
            c.GetString("bad-rows", "fail").ToLowerInvariant() switch
            {
                "fail" => Sessionization.Persistence.Tables.BadRowsMode.Fail,
                "quarantine" => Sessionization.Persistence.Tables.BadRowsMode.Quarantine,
                var other => throw new Akka.Configuration.ConfigurationException($"sessionization.bad-rows '{other}' is not fail or quarantine"),
            });
    }
}

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

    /// <summary>A worker's wait after its first failure in a row (<c>sessionization.retry.initial</c>); it doubles with each further one.</summary>
    public TimeSpan RetryInitial { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest wait between a worker's attempts after failures (<c>sessionization.retry.max</c>).</summary>
    public TimeSpan RetryMax { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Every this many committed batches the coordinator compacts the session tables between two batches
    /// (<c>sessionization.tables.optimize-every</c>); null (<c>off</c>): only the <c>optimize</c> command does.
    /// </summary>
    public int? OptimizeEvery { get; init; }

    /// <summary>The size the coordinator's compactions join files up to (<c>sessionization.tables.optimize-target-size</c>).</summary>
    public long OptimizeTargetBytes { get; init; } = Compaction.DefaultTargetBytes;

    /// <summary>How sessions are cut (<c>sessionization.sessions</c>).</summary>
    public SessionRules Sessions { get; init; } = SessionRules.Batches;

    public static SessionizationSettings FromConfig(Akka.Configuration.Config config)
    {
        var c = config.GetConfig("sessionization");
        return new SessionizationSettings(
            c.GetString("base-dir"),
            Int(c, "max-files-per-batch"),
            Time(c, "poll-interval"),
            Int(c, "checkpoints.retain"),
            Time(c, "batch-timeout"),
            c.GetString("bad-rows", "fail").ToLowerInvariant() switch
            {
                "fail" => BadRowsMode.Fail,
                "quarantine" => BadRowsMode.Quarantine,
                var other => throw new Akka.Configuration.ConfigurationException($"sessionization.bad-rows '{other}' is not fail or quarantine"),
            },
            Int(c, "user-sessions.max-in-flight", 8000))
        {
            UserSessionShards = Positive(c, "user-sessions.shards", UserSessionRegion.DefaultShards),
            PassivateAfter = Positive(c, "user-sessions.passivate-after", 1),
            CheckpointInterval = Int(c, "tables.checkpoint-interval", Persistence.Delta.DeltaTable.DefaultCheckpointInterval),
            Sessions = SessionsFrom(c),
            OptimizeEvery = OffOrPositive(c, "tables.optimize-every"),
            OptimizeTargetBytes = !c.HasPath("tables.optimize-target-size") ? Compaction.DefaultTargetBytes
                : Compaction.TryParseSize(c.GetString("tables.optimize-target-size"))
                    ?? throw new Akka.Configuration.ConfigurationException(
                        $"sessionization.tables.optimize-target-size '{c.GetString("tables.optimize-target-size")}' is not {Compaction.SizeExamples}"),
            RetryInitial = c.HasPath("retry.initial") ? Time(c, "retry.initial") : TimeSpan.FromSeconds(1),
            RetryMax = c.HasPath("retry.max") ? Time(c, "retry.max") : TimeSpan.FromMinutes(5),
        };
    }

    /// <summary>
    /// <c>sessionization.sessions</c>: each setting checked here, so a bad one is refused with its name whether it
    /// came from a HOCON file, the environment or a flag.
    /// </summary>
    public static SessionRules SessionsFrom(Akka.Configuration.Config c)
    {
        var modeText = c.GetString("sessions.mode", "batches");
        var mode = SessionRules.ParseMode(modeText)
            ?? throw new Akka.Configuration.ConfigurationException($"sessionization.sessions.mode '{modeText}' is not batches or event-time");
        var gap = Duration(c, "gap", "30m", allowZero: false)!.Value;
        var maxDuration = Duration(c, "max-duration", "off", allowZero: false, allowOff: true);
        var delay = Duration(c, "watermark-delay", "0s", allowZero: true)!.Value;
        var lateness = Duration(c, "allowed-lateness", "0s", allowZero: true)!.Value;
        var idle = Duration(c, "idle-close", "off", allowZero: false, allowOff: true);
        return new SessionRules(mode, new EventTimeSettings(gap, maxDuration, delay, lateness), idle is { } i ? TimeSpan.FromMicroseconds(i) : null);
    }

    private static long? Duration(Akka.Configuration.Config c, string name, string fallback, bool allowZero, bool allowOff = false)
    {
        var text = c.GetString("sessions." + name, fallback);
        if (allowOff && text.Trim().Equals("off", StringComparison.OrdinalIgnoreCase))
            return null;
        if (Durations.TryParseMicros(text) is { } micros && (allowZero || micros > 0))
            return micros;
        var expected = (allowZero ? "a duration like 0s, 90s, 30m or 24h" : "a positive duration like 90s, 30m or 24h") + (allowOff ? ", or off" : "");
        throw new Akka.Configuration.ConfigurationException($"sessionization.sessions.{name} '{text}' is not {expected}");
    }

    /// <summary>
    /// A setting read as a type, refused in one line naming it when it is not one: a value from the environment or a
    /// HOCON file otherwise fails deep in the HOCON library as a bare <see cref="FormatException"/>.
    /// </summary>
    private static T Typed<T>(Akka.Configuration.Config c, string path, string expected, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is not Akka.Configuration.ConfigurationException)
        {
            string text;
            try
            {
                text = c.GetString(path);
            }
            catch (Exception)
            {
                text = "?";
            }

            throw new Akka.Configuration.ConfigurationException($"sessionization.{path} '{text}' is not {expected}");
        }
    }

    private static int Int(Akka.Configuration.Config c, string path, int? fallback = null) =>
        Typed(c, path, "a whole number", () => fallback is { } f ? c.GetInt(path, f) : c.GetInt(path));

    private static TimeSpan Time(Akka.Configuration.Config c, string path) =>
        Typed(c, path, "a duration like 500ms, 10s or 10m", () => c.GetTimeSpan(path));

    private static int? OffOrPositive(Akka.Configuration.Config c, string path)
    {
        var text = c.GetString(path, "off").Trim();
        if (text.Equals("off", StringComparison.OrdinalIgnoreCase))
            return null;
        return int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n >= 1
            ? n
            : throw new Akka.Configuration.ConfigurationException($"sessionization.{path} '{text}' is not a whole number of at least 1, or off");
    }

    private static int Positive(Akka.Configuration.Config c, string path, int fallback)
    {
        var value = Int(c, path, fallback);
        return value >= 1 ? value : throw new Akka.Configuration.ConfigurationException($"sessionization.{path} must be at least 1, not {value}");
    }
}

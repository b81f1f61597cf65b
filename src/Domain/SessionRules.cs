using System.Globalization;

namespace Sessionization.Domain;

/// <summary>How sessions are cut: the seed's rule (a session ends in the first batch without a visit of its user) or by event time.</summary>
public enum SessionMode
{
    Batches,
    EventTime,
}

/// <summary>
/// The session settings a pipeline's state is made with (HOCON <c>sessionization.sessions</c>). They are recorded with
/// the first batch: sessions computed under one set and continued under another would be neither. <see cref="IdleClose"/>
/// is not one of them: it only decides when a worker forms a batch, and that batch's watermark is recorded in its plan.
/// </summary>
public sealed record SessionRules(SessionMode Mode, EventTimeSettings EventTime, TimeSpan? IdleClose = null)
{
    public static EventTimeSettings DefaultEventTime { get; } = new(Durations.MicrosPerMinute * 30, null, 0, 0);

    public static SessionRules Batches { get; } = new(SessionMode.Batches, DefaultEventTime);

    /// <summary>
    /// The settings as recorded and compared: <c>batches</c>, or <c>event-time</c> with every setting that decides
    /// sessions, in a canonical form (<c>gap=30m max-duration=off watermark-delay=0s allowed-lateness=0s</c>).
    /// </summary>
    public string Describe() => Mode == SessionMode.Batches
        ? "batches"
        : $"event-time gap={Durations.Format(EventTime.GapMicros)} max-duration={(EventTime.MaxDurationMicros is { } max ? Durations.Format(max) : "off")} " +
          $"watermark-delay={Durations.Format(EventTime.WatermarkDelayMicros)} allowed-lateness={Durations.Format(EventTime.AllowedLatenessMicros)}";

    /// <summary>The same settings as command-line flags: <c>--mode event-time --gap 30m ...</c>.</summary>
    public string Flags() => Mode == SessionMode.Batches
        ? "--mode batches"
        : "--mode " + string.Join(" --", Describe().Split(' ').Select(setting => setting.Replace('=', ' ')));

    /// <summary>
    /// Why a state whose sessions were made under <paramref name="recorded"/> cannot go on under these rules, or null
    /// when it can. A state recorded before the rules were kept (<paramref name="recorded"/> null with batches
    /// committed) ran the seed's rule, the only one there was.
    /// </summary>
    public string? Mismatch(string? recorded) =>
        recorded is null || recorded == Describe()
            ? null
            : $"the session settings differ from those the state was made with (recorded: {recorded}; given: {Describe()}); " +
              "run with the recorded ones, or with --from-batch 0 to reprocess every visit under the new ones";

    /// <summary>Whether recorded rules (<see cref="Describe"/>; null: none recorded) cut sessions by event time.</summary>
    public static bool IsEventTime(string? described) => described?.StartsWith("event-time", StringComparison.Ordinal) == true;

    /// <summary>The rules a state holds: what its first batch recorded, or the seed's rule for a state older than the record.</summary>
    public static string? RecordedIn(CoordinatorState state) =>
        state.SessionRules ?? (state.NextBatch > 0 || state.InFlight is not null ? Batches.Describe() : null);

    /// <summary>Parses <c>batches</c> or <c>event-time</c>; null when it is neither.</summary>
    public static SessionMode? ParseMode(string text) => text.Trim().ToLowerInvariant() switch
    {
        "batches" => SessionMode.Batches,
        "event-time" => SessionMode.EventTime,
        _ => null,
    };
}

/// <summary>Durations as the settings write them: a whole number and a unit (<c>us ms s m h d</c>), e.g. <c>30m</c>, <c>24h</c>, <c>0s</c>.</summary>
public static class Durations
{
    public const long MicrosPerSecond = 1_000_000;
    public const long MicrosPerMinute = 60 * MicrosPerSecond;

    private static readonly (string Unit, long Micros)[] Units =
    [
        ("d", 24 * 60 * MicrosPerMinute), ("h", 60 * MicrosPerMinute), ("m", MicrosPerMinute), ("s", MicrosPerSecond), ("ms", 1000), ("us", 1),
    ];

    /// <summary>The duration in microseconds, or null when <paramref name="text"/> is not one (a negative one is not).</summary>
    public static long? TryParseMicros(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        // Longest unit names first: "ms" and "us" also end in "s".
        foreach (var (unit, micros) in Units.OrderByDescending(u => u.Unit.Length))
        {
            if (!t.EndsWith(unit, StringComparison.Ordinal))
                continue;
            var number = t[..^unit.Length].Trim();
            if (long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= long.MaxValue / micros / 4)
                return n * micros;
            return null;
        }

        return null;
    }

    /// <summary>The shortest exact form: <c>30m</c>, <c>90s</c>, <c>1500ms</c>.</summary>
    public static string Format(long micros)
    {
        if (micros == 0)
            return "0s";
        foreach (var (unit, size) in Units)
        {
            if (micros % size == 0)
                return (micros / size).ToString(CultureInfo.InvariantCulture) + unit;
        }

        return micros.ToString(CultureInfo.InvariantCulture) + "us";
    }
}

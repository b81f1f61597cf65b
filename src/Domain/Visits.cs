namespace Sessionization.Domain;

/// <summary>One row of the visits table; <see cref="VisitTimeMicros"/> is UTC microseconds since the Unix epoch.</summary>
public readonly record struct Visit(long UserId, long VisitTimeMicros, string Page);

/// <summary>A visit as a session keeps it: when, and which page.</summary>
public readonly record struct PageVisit(long TimeMicros, string Page);

/// <summary>Conversions between Delta/Spark microsecond timestamps and .NET times.</summary>
public static class Timestamps
{
    private const long UnixEpochTicks = 621355968000000000L;

    public static long ToMicros(DateTime utc) => (utc.ToUniversalTime().Ticks - UnixEpochTicks) / 10;

    public static long ToMicros(DateTimeOffset time) => (time.UtcTicks - UnixEpochTicks) / 10;

    public static DateTime ToDateTime(long micros) => new(UnixEpochTicks + (micros * 10), DateTimeKind.Utc);

    /// <summary>Formats as Spark's <c>show()</c> does: <c>yyyy-MM-dd HH:mm:ss[.ffffff]</c>, trailing zeros of the fraction dropped.</summary>
    public static string ToSparkString(long micros)
    {
        var time = ToDateTime(micros);
        var text = time.ToString("yyyy-MM-dd HH:mm:ss", System.Globalization.CultureInfo.InvariantCulture);
        var fraction = (int)(((micros % 1_000_000) + 1_000_000) % 1_000_000);
        return fraction == 0 ? text : text + "." + fraction.ToString("D6", System.Globalization.CultureInfo.InvariantCulture).TrimEnd('0');
    }

    /// <summary>ISO-8601 with microseconds and a Z, for CSV and JSON output.</summary>
    public static string ToIsoString(long micros) =>
        ToDateTime(micros).ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);
}

using Sessionization.Domain;

namespace Sessionization.Host.Input;

/// <summary>The seed walkthrough's rows, stamped with the current UTC time as its Python scripts do.</summary>
public static class SeedRows
{
    public static IReadOnlyList<(long UserId, string Page)> NewRows { get; } =
        [(1, "page_1.html"), (1, "page_2.html"), (2, "page_3.html"), (3, "page_4.html")];

    public static IReadOnlyList<(long UserId, string Page)> ClosingRows { get; } =
        [(3, "page_1.html"), (4, "page_2.html")];

    /// <summary>Each row gets its own reading of the clock, strictly increasing, like rows built one after another.</summary>
    public static List<Visit> Stamp(IEnumerable<(long UserId, string Page)> rows, Func<long> nowMicros)
    {
        var visits = new List<Visit>();
        var last = long.MinValue;
        foreach (var (userId, page) in rows)
        {
            last = Math.Max(nowMicros(), last + 1);
            visits.Add(new Visit(userId, last, page));
        }

        return visits;
    }
}

/// <summary>Synthetic visits, the same for the same seed: users, pages and times come from one seeded generator.</summary>
public static class SyntheticVisits
{
    public static readonly DateTimeOffset DefaultStart = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>
    /// <paramref name="visits"/> visits over users 1..<paramref name="users"/>, split into <paramref name="commits"/>
    /// commits. Commit <c>c</c> covers the hour starting <c>c</c> hours after <paramref name="start"/>, in time order.
    /// </summary>
    public static IEnumerable<List<Visit>> Generate(long users, long visits, int commits, ulong seed, DateTimeOffset start, int pages = 50)
    {
        var random = new SplitMix64(seed);
        var startMicros = Timestamps.ToMicros(start);
        const long HourMicros = 3_600_000_000L;
        for (var c = 0; c < commits; c++)
        {
            var count = (visits / commits) + (c < visits % commits ? 1 : 0);
            var batch = new List<Visit>((int)count);
            var times = new long[count];
            for (var i = 0; i < count; i++)
                times[i] = startMicros + (c * HourMicros) + (long)(random.Next() % (ulong)HourMicros);
            Array.Sort(times);
            for (var i = 0; i < count; i++)
            {
                var user = 1 + (long)(random.Next() % (ulong)users);
                var page = 1 + (int)(random.Next() % (ulong)pages);
                batch.Add(new Visit(user, times[i], $"page_{page}.html"));
            }

            yield return batch;
        }
    }
}

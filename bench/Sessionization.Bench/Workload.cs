using Sessionization.Domain;

namespace Sessionization.Bench;

/// <summary>
/// A deterministic workload with realistic session lifetimes: each user is active in a few consecutive runs
/// (1 to 3), then goes quiet, and a quarter of them come back later for another stint, so sessions open and
/// close in every run instead of growing forever.
/// </summary>
public sealed class Workload(long users, long visits, int runs, int commitsPerRun, ulong seed)
{
    public long Users { get; } = users;

    public long Visits { get; } = visits;

    public int Runs { get; } = runs;

    public int CommitsPerRun { get; } = commitsPerRun;

    public static readonly DateTimeOffset Start = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>The commits of run <paramref name="run"/>, each a list of visits in time order.</summary>
    public IEnumerable<List<Visit>> Commits(int run)
    {
        var active = ActiveUsers(run);
        var random = new SplitMix64(seed ^ (0x5EED_0000UL + (ulong)run));
        var perRun = (Visits / Runs) + (run < Visits % Runs ? 1 : 0);
        var runStart = Timestamps.ToMicros(Start) + (run * 3_600_000_000L);
        var slice = 3_600_000_000L / CommitsPerRun;
        for (var c = 0; c < CommitsPerRun; c++)
        {
            var count = (perRun / CommitsPerRun) + (c < perRun % CommitsPerRun ? 1 : 0);
            var times = new long[count];
            for (var i = 0; i < count; i++)
                times[i] = runStart + (c * slice) + (long)(random.Next() % (ulong)slice);
            Array.Sort(times);
            var commit = new List<Visit>((int)count);
            for (var i = 0; i < count; i++)
            {
                var user = active.Count > 0 ? active[(int)(random.Next() % (ulong)active.Count)] : 1 + (long)(random.Next() % (ulong)Users);
                commit.Add(new Visit(user, times[i], $"page_{1 + (random.Next() % 40)}.html"));
            }

            yield return commit;
        }
    }

    /// <summary>The users active in a run, from each user's own seeded lifetime.</summary>
    public List<long> ActiveUsers(int run)
    {
        var active = new List<long>();
        for (long user = 1; user <= Users; user++)
        {
            var r = new SplitMix64(seed * 0x9E3779B97F4A7C15UL ^ (ulong)user);
            var start = (int)(r.Next() % (ulong)Runs);
            var life = 1 + (int)(r.Next() % 3);
            var returns = r.Next() % 4 == 0;
            var gap = 1 + (int)(r.Next() % 3);
            var life2 = 1 + (int)(r.Next() % 3);
            if ((run >= start && run < start + life) || (returns && run >= start + life + gap && run < start + life + gap + life2))
                active.Add(user);
        }

        return active;
    }
}

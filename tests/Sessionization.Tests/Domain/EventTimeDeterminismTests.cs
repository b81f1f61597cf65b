using CsCheck;
using Sessionization.Domain;

namespace Sessionization.Tests.Domain;

/// <summary>
/// The determinism contract of event-time sessions, property-based: random visits in random commits, batched at
/// random, end with the sessions computed from all accepted visits at once; where no visit is late, that is every
/// visit, whatever the batching.
/// </summary>
public class EventTimeDeterminismTests
{
    private const long Minute = 60_000_000L;

    private sealed record Case(EventTimeSettings Settings, Visit[][] Commits, int[] BatchSizes);

    private static readonly Gen<EventTimeSettings> Settings =
        Gen.Select(Gen.OneOf(10L, 30L), Gen.OneOf<long?>(null, 45L, 90L), Gen.OneOf(0L, 5L, 20L), Gen.OneOf(0L, 10L))
            .Select(s => new EventTimeSettings(s.Item1 * Minute, s.Item2 * Minute, s.Item3 * Minute, s.Item4 * Minute));

    private static readonly Gen<Visit> AnyVisit =
        Gen.Select(Gen.Int[1, 4], Gen.Int[0, 400], Gen.Int[0, 9]).Select(v => new Visit(v.Item1, v.Item2 * Minute, $"p{v.Item3}"));

    private static Gen<Case> Cases(Gen<Visit[]> visits) =>
        Gen.Select(Settings, visits, Gen.Int[1, 6].Array[1, 40], Gen.Int[1, 4].Array[1, 40])
            .Select(c => new Case(c.Item1, Split(c.Item2, c.Item3), c.Item4));

    /// <summary>Visits in time order with a disorder no greater than the watermark delay: none can be late.</summary>
    private static readonly Gen<Visit[]> OrderedVisits =
        Gen.Select(Gen.Int[1, 4], Gen.Int[0, 40], Gen.Int[0, 9]).Array[1, 80].Select(steps =>
        {
            var time = 0L;
            return steps.Select(s => new Visit(s.Item1, (time += s.Item2 % 25) * Minute, $"p{s.Item3}")).ToArray();
        });

    [Fact]
    public void Any_batching_ends_with_the_sessions_of_all_accepted_visits_computed_at_once()
    {
        Cases(AnyVisit.Array[1, 60]).Sample(c =>
        {
            var policy = new EventTimeSessionPolicy(c.Settings);
            var (table, late) = Simulate(policy, c.Commits, c.BatchSizes);

            var accepted = SessionKeys.Accepted(c.Commits.SelectMany(v => v), late);
            Assert.Equal(SessionKeys.Of(policy.Direct(accepted)), SessionKeys.Of(table));
        }, iter: 400);
    }

    [Fact]
    public void Where_no_visit_is_late_every_batching_gives_the_same_sessions()
    {
        Gen.Select(Cases(OrderedVisits), Gen.Int[1, 4].Array[1, 40]).Sample(t =>
        {
            var (c, otherBatching) = t;
            var settings = c.Settings with { WatermarkDelayMicros = 25 * Minute };
            var policy = new EventTimeSessionPolicy(settings);

            var (one, lateOne) = Simulate(policy, c.Commits, c.BatchSizes);
            var (other, lateOther) = Simulate(policy, c.Commits, otherBatching);

            Assert.Empty(lateOne);
            Assert.Empty(lateOther);
            Assert.Equal(SessionKeys.Of(policy.Direct(c.Commits.SelectMany(v => v))), SessionKeys.Of(one));
            Assert.Equal(SessionKeys.Of(one), SessionKeys.Of(other));
        }, iter: 300);
    }

    private static Visit[][] Split(Visit[] visits, int[] sizes)
    {
        var commits = new List<Visit[]>();
        var at = 0;
        for (var i = 0; at < visits.Length; i++)
        {
            var size = Math.Min(sizes[i % sizes.Length], visits.Length - at);
            commits.Add(visits[at..(at + size)]);
            at += size;
        }

        return [.. commits];
    }

    /// <summary>
    /// Runs the commits through the policy as the coordinator does: each batch steps the users with visits and those
    /// whose deadline the new watermark reached, then an end-of-input batch. Returns the <c>sessions</c> table and the late visits.
    /// </summary>
    private static (List<SessionRecord> Table, List<Visit> Late) Simulate(EventTimeSessionPolicy policy, Visit[][] commits, int[] batchSizes)
    {
        var states = new Dictionary<long, EventTimeUserState>();
        var table = new List<SessionRecord>();
        var late = new List<Visit>();
        var watermark = Watermark.None;
        var batch = 0L;
        var next = 0;
        while (true)
        {
            var endOfInput = next >= commits.Length;
            var size = batchSizes[(int)(batch % batchSizes.Length)];
            var visits = endOfInput ? [] : commits[next..Math.Min(commits.Length, next + size)].SelectMany(v => v).ToList();
            next += size;
            var after = endOfInput
                ? Watermark.EndOfInput
                : Watermark.After(watermark, visits.Max(v => v.VisitTimeMicros), policy.Settings.WatermarkDelayMicros);

            var byUser = visits.GroupBy(v => v.UserId).ToDictionary(g => g.Key, g => g.ToList());
            foreach (var user in byUser.Keys.Union(states.Keys).ToList())
            {
                var state = states.GetValueOrDefault(user) ?? EventTimeUserState.Empty(user);
                var userVisits = byUser.GetValueOrDefault(user) ?? [];
                var step = policy.Step(state, batch, userVisits.Select(v => new PageVisit(v.VisitTimeMicros, v.Page)).ToArray(), watermark, after)!;
                var due = policy.NextDeadline(state) is { } deadline && Watermark.IsAtOrPast(after, deadline, 0);
                if (userVisits.Count == 0 && !due)
                {
                    // A user the batch need not visit: stepping it anyway must change nothing.
                    Assert.False(step.ChangesTables);
                    Assert.Equal(Describe(state), Describe(step.State));
                    continue;
                }

                foreach (var removed in step.Removed)
                    Assert.True(table.Remove(removed), $"batch {batch} removes a row that is not in the table: {removed}");
                table.AddRange(step.Written);
                late.AddRange(step.Late.Select(v => new Visit(user, v.TimeMicros, v.Page)));
                if (step.State.Sessions.IsEmpty)
                    states.Remove(user);
                else
                    states[user] = step.State;
            }

            watermark = after;
            batch++;
            if (endOfInput)
                break;
        }

        Assert.Empty(states);
        return (table, late);
    }

    private static string Describe(EventTimeUserState state) =>
        string.Join(" | ", state.Sessions.Select(s => $"{s.WrittenIn}:" + string.Join(",", s.Visits.Select(v => $"{v.TimeMicros / Minute}{v.Page}"))));
}

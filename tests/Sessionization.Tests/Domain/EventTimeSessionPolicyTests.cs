using Sessionization.Domain;

namespace Sessionization.Tests.Domain;

/// <summary>The event-time session rule as a pure function: times are in minutes to keep the cases readable.</summary>
public class EventTimeSessionPolicyTests
{
    private const long Minute = 60_000_000L;
    private const long User = 7;

    private static readonly EventTimeSessionPolicy Thirty = Policy(gap: 30);

    private static EventTimeSessionPolicy Policy(long gap, long? max = null, long lateness = 0) =>
        new(new EventTimeSettings(gap * Minute, max * Minute, 0, lateness * Minute));

    private static PageVisit V(long minute, string page) => new(minute * Minute, page);

    private static long M(long minute) => minute * Minute;

    /// <summary>Applies batches with the watermark each leaves (in minutes), returning the last step.</summary>
    private static (EventTimeUserState State, EventTimeStep Step) Batches(EventTimeSessionPolicy policy, params (PageVisit[] Visits, long Watermark)[] batches)
    {
        var state = EventTimeUserState.Empty(User);
        var before = Watermark.None;
        EventTimeStep? step = null;
        for (var b = 0; b < batches.Length; b++)
        {
            step = policy.Step(state, b, batches[b].Visits, before, M(batches[b].Watermark))!;
            state = step.State;
            before = M(batches[b].Watermark);
        }

        return (state, step!);
    }

    [Fact]
    public void Visits_exactly_a_gap_apart_are_two_sessions_and_one_microsecond_less_is_one()
    {
        var split = Thirty.Chains([V(0, "a"), V(30, "b")]);
        Assert.Equal(2, split.Count);

        var joined = Thirty.Chains([V(0, "a"), new PageVisit(M(30) - 1, "b")]);
        Assert.Single(joined);
        Assert.Equal(2, joined[0][0].Length);
    }

    [Fact]
    public void Visits_at_the_same_time_keep_commit_then_row_order()
    {
        var (_, step) = Batches(Thirty, ([V(5, "first"), V(5, "second")], 0), ([V(5, "third")], 100));

        var row = Assert.Single(step.Written);
        Assert.Equal("first -> second -> third", row.ConcatenatedPages);
        Assert.Equal(3, row.VisitCount);
    }

    [Fact]
    public void A_visit_at_start_plus_max_duration_starts_a_new_session_within_the_chain()
    {
        var policy = Policy(gap: 30, max: 60);

        var chains = policy.Chains([V(0, "a"), V(20, "b"), V(40, "c"), V(59, "d"), V(60, "e"), V(80, "f")]);

        var chain = Assert.Single(chains);
        Assert.Equal(["a", "b", "c", "d"], chain[0].Select(v => v.Page));
        Assert.Equal(["e", "f"], chain[1].Select(v => v.Page));
    }

    [Fact]
    public void A_session_closes_in_the_first_batch_whose_watermark_reaches_its_end_plus_the_gap()
    {
        var policy = Thirty;
        var open = policy.Step(EventTimeUserState.Empty(User), 0, [V(0, "a"), V(10, "b")], Watermark.None, M(39))!;
        Assert.Empty(open.Written);
        Assert.Equal("a -> b", Assert.Single(open.OpenedOrChanged).ConcatenatedPages);
        Assert.Equal(M(40), policy.NextDeadline(open.State));

        var closed = policy.Step(open.State, 1, [], M(39), M(40))!;
        var row = Assert.Single(closed.Written);
        Assert.Equal((1L, M(0), M(10), 2L), (row.BatchNumber, row.StartTimeMicros, row.EndTimeMicros, row.VisitCount));
        Assert.Empty(closed.OpenedOrChanged);
    }

    [Fact]
    public void A_session_closes_once_the_watermark_reaches_start_plus_max_duration_even_while_visits_continue()
    {
        var policy = Policy(gap: 30, max: 60);

        var step = policy.Step(EventTimeUserState.Empty(User), 0, [V(0, "a"), V(20, "b"), V(40, "c")], Watermark.None, M(60))!;

        Assert.Equal("a -> b -> c", Assert.Single(step.Written).ConcatenatedPages);
    }

    [Fact]
    public void A_visit_behind_the_watermark_but_not_late_corrects_the_written_session()
    {
        var (state, step) = Batches(Thirty,
            ([V(0, "a"), V(10, "b")], 45),
            ([V(20, "behind"), V(100, "next")], 100));

        var removed = Assert.Single(step.Removed);
        Assert.Equal((0L, "a -> b"), (removed.BatchNumber, removed.ConcatenatedPages));
        var written = Assert.Single(step.Written);
        Assert.Equal((1L, "a -> b -> behind"), (written.BatchNumber, written.ConcatenatedPages));
        Assert.Empty(step.Late);
        Assert.Equal("next", Assert.Single(step.OpenedOrChanged).ConcatenatedPages);
        Assert.Null(Assert.Single(state.Sessions).WrittenIn);
    }

    [Fact]
    public void A_visit_that_extends_a_written_session_past_the_watermark_reopens_it()
    {
        var (state, step) = Batches(Thirty,
            ([V(0, "a")], 30),
            ([V(25, "b")], 30));

        Assert.Equal("a", Assert.Single(step.Removed).ConcatenatedPages);
        Assert.Empty(step.Written);
        Assert.Equal("a -> b", Assert.Single(step.OpenedOrChanged).ConcatenatedPages);
        Assert.Null(Assert.Single(state.Sessions).WrittenIn);
    }

    [Fact]
    public void A_visit_that_bridges_two_written_sessions_merges_them_into_one_row()
    {
        var policy = Policy(gap: 30, lateness: 60);
        var (_, step) = Batches(policy,
            ([V(0, "a"), V(40, "b")], 80),
            ([V(20, "bridge")], 80));

        Assert.Equal(["a", "b"], step.Removed.Select(r => r.ConcatenatedPages).Order());
        Assert.Equal("a -> bridge -> b", Assert.Single(step.Written).ConcatenatedPages);
    }

    [Fact]
    public void A_visit_at_or_past_gap_plus_lateness_behind_the_watermark_is_late_and_changes_nothing()
    {
        var policy = Policy(gap: 30, lateness: 10);
        var (state, step) = Batches(policy,
            ([V(80, "a")], 100),
            ([V(60, "late"), new PageVisit(M(60) + 1, "just in time")], 100));

        Assert.Equal("late", Assert.Single(step.Late).Page);
        Assert.Equal("just in time -> a", Assert.Single(step.OpenedOrChanged).ConcatenatedPages);
        Assert.True(policy.IsLate(M(60), M(100)));
        Assert.False(policy.IsLate(M(60) + 1, M(100)));
        Assert.Single(state.Sessions);
    }

    [Fact]
    public void A_written_chain_is_let_go_once_no_visit_that_is_not_late_can_reach_it()
    {
        var policy = Policy(gap: 30, lateness: 10);
        var (state, _) = Batches(policy, ([V(0, "a")], 30));
        Assert.Equal(M(70), policy.NextDeadline(state));

        var kept = policy.Step(state, 1, [], M(30), M(69))!;
        Assert.Single(kept.State.Sessions);
        var gone = policy.Step(kept.State, 2, [], M(69), M(70))!;
        Assert.Empty(gone.State.Sessions);
        Assert.Null(policy.NextDeadline(gone.State));
        Assert.False(gone.ChangesTables);
    }

    [Fact]
    public void The_watermark_never_goes_back()
    {
        Assert.Equal(M(50), Watermark.After(M(50), M(40), 0));
        Assert.Equal(M(50), Watermark.After(M(50), null, 0));
        Assert.Equal(M(55), Watermark.After(M(50), M(60), M(5)));
        Assert.Throws<ArgumentException>(() => Thirty.Step(EventTimeUserState.Empty(User), 0, [], M(50), M(40)));
    }

    [Fact]
    public void End_of_input_closes_every_open_session_and_keeps_nothing()
    {
        var (state, step) = Batches(Thirty, ([V(0, "a"), V(100, "b")], 100));
        Assert.Single(state.Sessions);
        Assert.Equal("a", Assert.Single(step.Written).ConcatenatedPages);

        var end = Thirty.Step(state, 1, [], M(100), Watermark.EndOfInput)!;

        Assert.Equal("b", Assert.Single(end.Written).ConcatenatedPages);
        Assert.Empty(end.State.Sessions);
    }

    [Fact]
    public void Visits_out_of_time_order_in_a_batch_are_ordered_by_time_with_ties_in_arrival_order_after_kept_ones()
    {
        var (_, step) = Batches(Thirty, ([V(10, "kept")], 0), ([V(40, "x"), V(10, "t1"), V(5, "y"), V(10, "t2")], 1000));

        Assert.Equal(["y -> kept -> t1 -> t2", "x"], step.Written.Select(r => r.ConcatenatedPages));
    }

    [Fact]
    public void A_user_with_many_open_sessions_keeps_the_untouched_ones_and_merges_the_bridged_ones()
    {
        var many = Enumerable.Range(0, 70).Select(i => V(i * 31, $"p{i}")).ToArray();
        var (before, _) = Batches(Thirty, (many, 0));
        Assert.Equal(70, before.Sessions.Length);

        var step = Thirty.Step(before, 1, [V(15, "bridge")], 0, 0)!;

        Assert.Equal("p0 -> bridge -> p1", Assert.Single(step.OpenedOrChanged).ConcatenatedPages);
        Assert.Empty(step.Written);
        Assert.Empty(step.Removed);
        Assert.Equal(69, step.State.Sessions.Length);
        for (var i = 1; i < 69; i++)
            Assert.Same(before.Sessions[i + 1], step.State.Sessions[i]);
    }

    [Fact]
    public void A_batch_applied_already_is_not_applied_again()
    {
        var (state, _) = Batches(Thirty, ([V(0, "a")], 0));

        Assert.Null(Thirty.Step(state, 0, [V(1, "again")], Watermark.None, 0));
    }
}

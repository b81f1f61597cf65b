using Sessionization.Domain;

namespace Sessionization.Tests.Domain;

public class UserSessionStateTests
{
    private static PageVisit V(long t, string page) => new(t, page);

    private static UserSessionState Run(UserSessionState state, long batch, params PageVisit[] visits)
    {
        var e = state.Decide(batch, visits);
        return e is null ? state : state.Apply(e);
    }

    [Fact]
    public void A_first_visit_opens_a_pending_session()
    {
        var state = Run(UserSessionState.Empty(1), 0, V(10, "a"), V(20, "b"));

        var outcome = Assert.IsType<SessionPending>(state.OutcomeOf(0));
        Assert.Equal("a -> b", outcome.Session.ConcatenatedPages);
        Assert.Equal(10, outcome.Session.StartTimeMicros);
        Assert.Equal(20, outcome.Session.EndTimeMicros);
        Assert.Equal(2, outcome.Session.VisitCount);
    }

    [Fact]
    public void Visits_in_the_next_batch_extend_the_session_in_visit_time_order()
    {
        var state = Run(UserSessionState.Empty(3), 0, V(10, "page_4.html"));
        state = Run(state, 1, V(20, "page_4.html"));
        state = Run(state, 2, V(30, "page_1.html"));

        var outcome = Assert.IsType<SessionPending>(state.OutcomeOf(2));
        Assert.Equal("page_4.html -> page_4.html -> page_1.html", outcome.Session.ConcatenatedPages);
    }

    [Fact]
    public void Late_visits_are_merged_into_their_place_by_time()
    {
        var state = Run(UserSessionState.Empty(1), 0, V(10, "a"), V(30, "c"));
        state = Run(state, 1, V(20, "b"), V(40, "d"));

        Assert.Equal("a -> b -> c -> d", state.Open!.ConcatenatedPages);
        Assert.Equal(10, state.Open.StartTimeMicros);
        Assert.Equal(40, state.Open.EndTimeMicros);
    }

    [Fact]
    public void A_batch_without_visits_closes_the_session()
    {
        var state = Run(UserSessionState.Empty(1), 0, V(10, "a"));
        state = Run(state, 1);

        var outcome = Assert.IsType<SessionCompleted>(state.OutcomeOf(1));
        Assert.Equal("a", outcome.Session.ConcatenatedPages);
        Assert.Null(state.Open);
    }

    [Fact]
    public void A_session_not_extended_in_the_next_batch_is_closed_even_if_its_user_never_heard()
    {
        var state = Run(UserSessionState.Empty(1), 0, V(10, "a"));

        Assert.NotNull(state.OpenAt(1));
        Assert.Null(state.OpenAt(2));
        var returned = Run(state, 2, V(20, "b"));
        Assert.Equal("b", Assert.IsType<SessionPending>(returned.OutcomeOf(2)).Session.ConcatenatedPages);
        Assert.Equal(2, returned.Open!.StartBatch);
    }

    [Fact]
    public void A_user_who_closes_and_returns_starts_a_new_session()
    {
        var state = Run(UserSessionState.Empty(1), 0, V(10, "a"));
        state = Run(state, 1);
        state = Run(state, 4, V(50, "b"));

        var outcome = Assert.IsType<SessionPending>(state.OutcomeOf(4));
        Assert.Equal("b", outcome.Session.ConcatenatedPages);
        Assert.Equal(4, outcome.Session.StartBatch);
        Assert.Equal(1, outcome.Session.VisitCount);
    }

    [Fact]
    public void Visits_with_the_same_time_keep_their_arrival_order()
    {
        var visits = BatchGrouping.ByUser([new Visit(1, 10, "x"), new Visit(1, 5, "first"), new Visit(1, 10, "y"), new Visit(1, 10, "z")]);
        var state = Run(UserSessionState.Empty(1), 0, [.. visits[1]]);
        state = Run(state, 1, V(10, "later"));

        Assert.Equal("first -> x -> y -> z -> later", state.Open!.ConcatenatedPages);
    }

    [Fact]
    public void The_largest_user_id_and_non_ascii_pages_are_kept_as_they_are()
    {
        var state = Run(UserSessionState.Empty(long.MaxValue), 0, V(1, "страница.html"), V(2, "页面 🙂.html"));

        var outcome = Assert.IsType<SessionPending>(state.OutcomeOf(0));
        Assert.Equal(long.MaxValue, outcome.Session.UserId);
        Assert.Equal("страница.html -> 页面 🙂.html", outcome.Session.ConcatenatedPages);
    }

    [Fact]
    public void A_batch_already_applied_decides_nothing_and_answers_with_the_recorded_outcome()
    {
        var state = Run(UserSessionState.Empty(1), 0, V(10, "a"));
        state = Run(state, 1, V(20, "b"));

        Assert.Null(state.Decide(1, [V(20, "b")]));
        Assert.Null(state.Decide(0, [V(10, "a")]));
        Assert.Equal("a -> b", Assert.IsType<SessionPending>(state.OutcomeOf(1)).Session.ConcatenatedPages);

        var closed = Run(state, 2);
        Assert.Null(closed.Decide(2, []));
        Assert.IsType<SessionCompleted>(closed.OutcomeOf(2));
    }

    [Fact]
    public void A_user_without_a_session_and_without_visits_has_nothing_to_record()
    {
        Assert.Null(UserSessionState.Empty(1).Decide(0, []));
        Assert.Null(UserSessionState.Empty(1).OutcomeOf(0));
    }

    [Fact]
    public void Replaying_the_same_events_gives_the_same_state()
    {
        IUserSessionEvent[] events = [new SessionOpened(0, [V(1, "a")]), new SessionExtended(1, [V(2, "b")]), new SessionClosed(2), new SessionOpened(5, [V(9, "c")])];
        var once = events.Aggregate(UserSessionState.Empty(7), (s, e) => s.Apply(e));
        var twice = events.Aggregate(UserSessionState.Empty(7), (s, e) => s.Apply(e));

        Assert.Equal(once, twice);
        Assert.Equal("c", once.Open!.ConcatenatedPages);
        // The close records the closed session for its batch's outcome; the next open forgets it.
        var closed = events.Take(3).Aggregate(UserSessionState.Empty(7), (s, e) => s.Apply(e));
        Assert.Null(closed.Open);
        Assert.Equal("a -> b", closed.ClosedInLastBatch!.ConcatenatedPages);
        Assert.Equal(new SessionCompleted(2, closed.ClosedInLastBatch), closed.OutcomeOf(2));
        Assert.Null(once.ClosedInLastBatch);
    }

    [Fact]
    public void An_event_that_does_not_fit_the_state_is_refused()
    {
        Assert.Throws<InvalidOperationException>(() => UserSessionState.Empty(1).Apply(new SessionClosed(0)));
        Assert.Throws<InvalidOperationException>(() => UserSessionState.Empty(1).Apply(new SessionExtended(0, [V(1, "a")])));
    }
}

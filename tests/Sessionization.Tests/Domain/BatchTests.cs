using Sessionization.Domain;

namespace Sessionization.Tests.Domain;

public class BatchTests
{
    private static SourceFile F(long version, int index) => new(version, index, $"f{version}-{index}.parquet", 100);

    [Fact]
    public void A_batch_takes_at_most_max_files_in_log_order_and_moves_the_cursor_past_them()
    {
        var files = new[] { F(0, 0), F(1, 0), F(1, 1), F(2, 0) };

        var plan = BatchPlanner.PlanNext(0, SourceCursor.Start, files, 2)!;

        Assert.Equal([F(0, 0), F(1, 0)], plan.Files);
        Assert.Equal(new SourceCursor(1, 1), plan.To);
        var next = BatchPlanner.PlanNext(1, plan.To, files, 2)!;
        Assert.Equal([F(1, 1), F(2, 0)], next.Files);
        Assert.Equal(new SourceCursor(2, 1), next.To);
        Assert.Null(BatchPlanner.PlanNext(2, next.To, files, 2));
    }

    [Fact]
    public void Nothing_new_forms_no_batch()
    {
        Assert.Null(BatchPlanner.PlanNext(0, SourceCursor.Start, [], 1000));
    }

    [Fact]
    public void Grouping_sorts_each_users_visits_by_time_and_keeps_ties_in_read_order()
    {
        var grouped = BatchGrouping.ByUser([new Visit(2, 30, "c"), new Visit(1, 20, "b"), new Visit(2, 10, "a"), new Visit(2, 30, "d"), new Visit(1, 20, "e")]);

        Assert.Equal(["a", "c", "d"], grouped[2].Select(v => v.Page));
        Assert.Equal(["b", "e"], grouped[1].Select(v => v.Page));
    }

    [Fact]
    public void Grouping_sorts_a_long_run_of_one_users_visits_in_reverse_order_and_keeps_ties_in_read_order()
    {
        // 200 visits, two at each time, times descending: past the short runs sorted by insertion.
        var visits = Enumerable.Range(0, 200).Select(i => new Visit(5, 1000 - (i / 2), $"p{i}")).ToList();

        var grouped = BatchGrouping.ByUser(visits)[5];

        Assert.Equal(visits.OrderBy(v => v.VisitTimeMicros).Select(v => v.Page), grouped.Select(v => v.Page));
        Assert.Equal(["p198", "p199"], grouped.Take(2).Select(v => v.Page));
    }

    [Fact]
    public void Visits_by_user_sorts_each_users_visits_by_time_across_parts_keeps_ties_in_read_order_and_leaves_out_what_is_not_kept()
    {
        List<Visit> first = [new Visit(2, 30, "c"), new Visit(1, 20, "b"), new Visit(2, 10, "a"), new Visit(3, 5, "late")];
        List<Visit> second = [new Visit(2, 30, "d"), new Visit(1, 20, "e"), new Visit(1, 5, "f")];

        var grouped = VisitsByUser.From([first, second], v => v.Page != "late");

        Assert.Equal(2, grouped.Count);
        Assert.Equal([1L, 2L], grouped.Users);
        Assert.Equal(["f", "b", "e"], grouped.At(0).ToArray().Select(v => v.Page));
        Assert.Equal(["a", "c", "d"], grouped.At(1).ToArray().Select(v => v.Page));
        Assert.Equal(["a", "c", "d"], grouped.Of(2).ToArray().Select(v => v.Page));
        Assert.Equal(["f", "b", "e"], grouped.Of(1).ToArray().Select(v => v.Page));
        Assert.False(grouped.Contains(3));
        Assert.True(grouped.Of(3).IsEmpty);
    }

    [Fact]
    public void Visits_by_user_lists_users_in_id_order_whatever_order_they_came_in()
    {
        var random = new Random(7);
        var visits = Enumerable.Range(0, 2_000).Select(i => new Visit(random.NextInt64(-500, 500), random.Next(100), $"p{i}")).ToList();

        var grouped = VisitsByUser.From([visits[..700], visits[700..]]);

        var expected = visits.GroupBy(v => v.UserId).OrderBy(g => g.Key).ToList();
        Assert.Equal(expected.Select(g => g.Key), grouped.Users);
        for (var rank = 0; rank < expected.Count; rank++)
            Assert.Equal(expected[rank].OrderBy(v => v.VisitTimeMicros).Select(v => v.Page), grouped.At(rank).ToArray().Select(v => v.Page));
    }

    [Fact]
    public void Open_users_without_visits_are_the_ones_to_close()
    {
        var active = BatchGrouping.ByUser([new Visit(3, 1, "x"), new Visit(4, 1, "y")]);

        Assert.Equal([1L, 2L], BatchGrouping.UsersToClose([3, 2, 1], active));
    }

    [Fact]
    public void The_coordinator_state_moves_through_planned_and_committed()
    {
        var plan = new BatchPlan(0, SourceCursor.Start, new SourceCursor(0, 1), [F(0, 0)]);
        var state = CoordinatorState.Initial.Apply(new BatchPlanned(plan), 1, 100);
        Assert.Equal(plan, state.InFlight);

        state = state.Apply(new BatchCommitted(0, plan.To, 4, 3, 0), 2, 100);
        Assert.Null(state.InFlight);
        Assert.Equal(1, state.NextBatch);
        Assert.Equal(plan.To, state.Cursor);
        Assert.Equal(new CommittedBatch(0, 0, 4, 3, 0), state.LastCommitted);
        Assert.Equal([0L], state.RetainedBatches);
        Assert.Throws<InvalidOperationException>(() => state.Apply(new BatchCommitted(1, plan.To, 0, 0, 0), 3, 100));
    }

    [Fact]
    public void The_latest_visit_time_only_grows_and_a_rewind_restores_it_from_the_checkpoint()
    {
        var state = CoordinatorState.Initial;
        long seq = 0;
        long?[] latest = [50, 30, null, 80];
        for (var b = 0; b < latest.Length; b++)
        {
            var plan = new BatchPlan(b, state.Cursor, new SourceCursor(b, 1), [F(b, 0)]);
            state = state.Apply(new BatchPlanned(plan), ++seq, 100).Apply(new BatchCommitted(b, plan.To, 1, 1, 0, latest[b]), ++seq, 100);
        }

        Assert.Equal(80, state.LatestVisitMicros);
        Assert.Equal(50, state.Apply(new RewindStarted(3), ++seq, 100).LatestVisitMicros);
        Assert.Equal(50, state.Apply(new RewindStarted(1), ++seq, 100).LatestVisitMicros);
        Assert.Null(state.Apply(new RewindStarted(0), ++seq, 100).LatestVisitMicros);
        Assert.Equal(80, state.Apply(new RewindStarted(4), ++seq, 100).LatestVisitMicros);
    }

    [Fact]
    public void A_rewind_past_every_retained_checkpoint_still_knows_the_sessions_open_before_its_batch()
    {
        var state = CoordinatorState.Initial;
        long seq = 0;
        long[] open = [5, 7, 9, 11];
        for (var b = 0; b < open.Length; b++)
        {
            var plan = new BatchPlan(b, state.Cursor, new SourceCursor(b, 1), [F(b, 0)]);
            state = state.Apply(new BatchPlanned(plan), ++seq, 2).Apply(new BatchCommitted(b, plan.To, 1, open[b], 0), ++seq, 2);
        }

        Assert.Equal([2L, 3L], state.RetainedBatches);
        Assert.Equal(11, state.OpenSessions);
        var rewound = state.Apply(new RewindStarted(2), ++seq, 2);
        Assert.Null(rewound.LastCommitted);
        Assert.Equal(7, rewound.OpenSessions);
        Assert.Equal(9, state.Apply(new RewindStarted(3), ++seq, 2).OpenSessions);
        Assert.Equal(11, state.Apply(new RewindStarted(4), ++seq, 2).OpenSessions);
    }

    private static CoordinatorState Batches(int count, int retain)
    {
        var state = CoordinatorState.Initial;
        long seq = 0;
        for (var b = 0; b < count; b++)
        {
            var plan = new BatchPlan(b, state.Cursor, new SourceCursor(b, 1), [F(b, 0)]);
            state = state.Apply(new BatchPlanned(plan), ++seq, retain).Apply(new BatchCommitted(b, plan.To, 1, 1, 0), ++seq, retain);
        }

        return state;
    }

    [Fact]
    public void Only_the_newest_checkpoints_are_retained()
    {
        var state = Batches(10, 3);

        Assert.Equal([7L, 8L, 9L], state.RetainedBatches);
        Assert.True(state.CanRewindTo(7));
        Assert.True(state.CanRewindTo(10));
        Assert.False(state.CanRewindTo(6));
    }

    [Fact]
    public void A_rewind_puts_the_cursor_back_to_the_start_of_the_batch_and_forgets_later_checkpoints()
    {
        var state = Batches(5, 100).Apply(new RewindStarted(2), 11, 100);

        Assert.Equal(2, state.NextBatch);
        Assert.Equal(new SourceCursor(1, 1), state.Cursor);
        Assert.Equal(2, state.RewindingTo);
        Assert.Equal([0L, 1L], state.RetainedBatches);
        Assert.Throws<InvalidOperationException>(() => state.Apply(new BatchPlanned(new BatchPlan(2, state.Cursor, new SourceCursor(2, 1), [F(2, 0)])), 12, 100));

        state = state.Apply(new RewindCompleted(2), 12, 100);
        Assert.Null(state.RewindingTo);
        Assert.Throws<InvalidOperationException>(() => Batches(5, 2).Apply(new RewindStarted(1), 11, 2));
    }

    [Theory]
    [InlineData(0L, "1970-01-01 00:00:00")]
    [InlineData(1_771_161_799_045_860L, "2026-02-15 13:23:19.04586")]
    [InlineData(1_771_161_799_045_843L, "2026-02-15 13:23:19.045843")]
    [InlineData(1_771_161_799_100_000L, "2026-02-15 13:23:19.1")]
    [InlineData(-1L, "1969-12-31 23:59:59.999999")]
    public void Timestamps_print_as_spark_shows_them(long micros, string expected)
    {
        Assert.Equal(expected, Timestamps.ToSparkString(micros));
    }
}

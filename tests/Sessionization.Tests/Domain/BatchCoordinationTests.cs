using Sessionization.Domain;

namespace Sessionization.Tests.Domain;

public class BatchCoordinationTests
{
    private const int Retain = 3;

    private static BatchPlan PlanFor(CoordinatorState state) =>
        new(state.NextBatch, state.Cursor, new SourceCursor(state.NextBatch + 1, 0), [new SourceFile(state.NextBatch, 0, $"f{state.NextBatch}", 1)]);

    /// <summary>Plans and commits <paramref name="batches"/> batches through the coordination, as the actor would.</summary>
    private static BatchCoordination Commit(BatchCoordination coordination, int batches)
    {
        var sequenceNr = 0L;
        for (var i = 0; i < batches; i++)
        {
            var plan = PlanFor(coordination.State);
            coordination = coordination.Apply(new BatchPlanned(plan), ++sequenceNr, Retain);
            coordination = coordination.Apply(new BatchCommitted(plan.Batch, plan.To, 1, 1, 0), ++sequenceNr, Retain).Committed();
        }

        return coordination;
    }

    [Fact]
    public void Nothing_happens_before_a_request_or_while_busy()
    {
        Assert.Null(BatchCoordination.Initial.Next().Step);

        var (busy, step) = BatchCoordination.Initial.PollingRequested(4, BadRowsMode.Fail).Next();
        Assert.IsType<CoordinatorStep.PlanBatch>(step);
        Assert.True(busy.Busy);
        Assert.Null(busy.Next().Step);
    }

    [Fact]
    public void A_drain_fixes_its_version_limit_at_its_first_look_and_finishes_when_nothing_is_left()
    {
        var (first, step) = BatchCoordination.Initial.DrainRequested(2, BadRowsMode.Quarantine, null).Next();
        var plan = Assert.IsType<CoordinatorStep.PlanBatch>(step);
        Assert.Equal(new CoordinatorStep.PlanBatch(0, SourceCursor.Start, 2, null), plan);

        var (planned, _, finished) = first.Planned(PlanFor(first.State), 7);
        Assert.False(finished);
        var committed = planned.Apply(new BatchPlanned(PlanFor(first.State)), 1, Retain)
            .Apply(new BatchCommitted(0, new SourceCursor(1, 0), 1, 1, 0), 2, Retain).Committed();

        var (second, next) = committed.Next();
        Assert.Equal(7, Assert.IsType<CoordinatorStep.PlanBatch>(next).UpToVersion);
        var (done, _, drained) = second.Planned(null, 9);
        Assert.True(drained);
        Assert.False(done.Busy);
        Assert.Equal(1, done.BatchesThisRun);
        Assert.Equal(7, done.DrainUpToVersion);
    }

    [Fact]
    public void A_drain_at_the_end_of_input_closes_pending_sessions_with_a_batch_of_no_files_then_finishes()
    {
        var committed = Commit(BatchCoordination.Initial, 2);
        var (looking, _) = committed.DrainRequested(1, BadRowsMode.Fail, null, endOfInput: true).Next();

        var (closing, plan, finished) = looking.Planned(null, 2);

        Assert.False(finished);
        Assert.True(closing.Busy);
        Assert.Equal(new BatchPlan(2, committed.State.Cursor, committed.State.Cursor, [], EndOfInput: true), plan);
        var closed = closing.Apply(new BatchPlanned(plan!), 10, Retain).Apply(new BatchCommitted(2, plan!.To, 0, 0, 1), 11, Retain).Committed();
        var (again, _) = closed.Next();
        var (done, none, drained) = again.Planned(null, 2);
        Assert.Null(none);
        Assert.True(drained);
        Assert.Equal(1, done.BatchesThisRun);
    }

    [Fact]
    public void A_closing_batch_that_leaves_sessions_open_is_not_formed_again_in_the_same_run()
    {
        var committed = Commit(BatchCoordination.Initial, 2);
        var (looking, _) = committed.DrainRequested(1, BadRowsMode.Fail, null, endOfInput: true).Next();
        var (closing, plan, _) = looking.Planned(null, 2);
        var stillOpen = closing.Apply(new BatchPlanned(plan!), 10, Retain).Apply(new BatchCommitted(2, plan!.To, 0, 3, 0), 11, Retain).Committed();

        var (done, none, finished) = stillOpen.Next().Next.Planned(null, 2);

        Assert.Null(none);
        Assert.True(finished);
        // A new run may try again.
        Assert.NotNull(done.DrainRequested(1, BadRowsMode.Fail, null, endOfInput: true).Next().Next.Planned(null, 2).Plan);
    }

    [Fact]
    public void A_polling_worker_given_an_idle_watermark_forms_a_batch_with_no_files_only_when_it_moves_the_watermark_of_open_sessions()
    {
        var committed = Commit(BatchCoordination.Initial, 2);
        var polling = committed.PollingRequested(1, BadRowsMode.Fail).Next().Next;

        var (_, plan, finished) = polling.Planned(null, BatchCoordination.NoVersionLimit, idleWatermark: 500);
        Assert.False(finished);
        Assert.Equal(new BatchPlan(2, committed.State.Cursor, committed.State.Cursor, [], WatermarkAtLeast: 500), plan);

        Assert.Null(polling.Planned(null, BatchCoordination.NoVersionLimit).Plan);
        var atWatermark = polling with { State = polling.State with { WatermarkMicros = 500 } };
        Assert.Null(atWatermark.Planned(null, BatchCoordination.NoVersionLimit, idleWatermark: 500).Plan);
        var nothingOpen = polling with { State = polling.State with { Open = 0, Checkpoints = [polling.State.Checkpoints[^1] with { Summary = polling.State.LastCommitted! with { Pending = 0 } }] } };
        Assert.Null(nothingOpen.Planned(null, BatchCoordination.NoVersionLimit, idleWatermark: 500).Plan);
        // A drain run never closes by the wall clock.
        Assert.Null(committed.DrainRequested(1, BadRowsMode.Fail, null).Next().Next.Planned(null, 2, idleWatermark: 500).Plan);
    }

    [Fact]
    public void Session_rules_are_recorded_with_the_first_batch_and_other_rules_are_refused_unless_the_run_rewinds_to_batch_0()
    {
        var eventTime = SessionRules.Batches with { Mode = SessionMode.EventTime };
        var fresh = BatchCoordination.Initial.DrainRequested(1, BadRowsMode.Fail, null);
        Assert.Null(fresh.RulesRefusal(eventTime));

        var planned = fresh.Apply(new BatchPlanned(PlanFor(fresh.State), eventTime.Describe()), 1, Retain);
        Assert.Equal(eventTime.Describe(), planned.State.SessionRules);
        Assert.Null(planned.RulesRefusal(eventTime));
        var refusal = planned.RulesRefusal(SessionRules.Batches);
        Assert.Contains("recorded: event-time gap=30m max-duration=off watermark-delay=0s allowed-lateness=0s; given: batches", refusal);
        Assert.Contains("--from-batch 0", refusal);
        Assert.Null(planned.DrainRequested(1, BadRowsMode.Fail, 0).RulesRefusal(SessionRules.Batches));

        // A state from before the rules were recorded ran the seed's rule.
        var older = Commit(BatchCoordination.Initial, 2);
        Assert.Null(older.State.SessionRules);
        Assert.Null(older.RulesRefusal(SessionRules.Batches));
        Assert.NotNull(older.RulesRefusal(eventTime));
    }

    [Fact]
    public void A_rewind_to_batch_0_forgets_the_session_rules_and_a_rewind_restores_the_watermark()
    {
        var state = CoordinatorState.Initial
            .Apply(new BatchPlanned(new BatchPlan(0, SourceCursor.Start, new SourceCursor(1, 0), []), "batches"), 1, Retain)
            .Apply(new BatchCommitted(0, new SourceCursor(1, 0), 5, 1, 0, 100, 70), 2, Retain)
            .Apply(new BatchPlanned(new BatchPlan(1, new SourceCursor(1, 0), new SourceCursor(2, 0), []), "batches"), 3, Retain)
            .Apply(new BatchCommitted(1, new SourceCursor(2, 0), 5, 1, 0, 200, 170), 4, Retain);
        Assert.Equal(170, state.WatermarkMicros);

        Assert.Equal(70, state.Apply(new RewindStarted(1), 5, Retain).WatermarkMicros);
        Assert.Equal("batches", state.Apply(new RewindStarted(1), 5, Retain).SessionRules);
        var atStart = state.Apply(new RewindStarted(0), 5, Retain);
        Assert.Null(atStart.WatermarkMicros);
        Assert.Null(atStart.SessionRules);
    }

    [Fact]
    public void A_drain_without_end_of_input_or_without_pending_sessions_forms_no_closing_batch()
    {
        var committed = Commit(BatchCoordination.Initial, 2);
        Assert.Null(committed.DrainRequested(1, BadRowsMode.Fail, null).Next().Next.Planned(null, 2).Plan);

        var nothingPending = committed.Apply(new BatchPlanned(PlanFor(committed.State)), 20, Retain)
            .Apply(new BatchCommitted(2, new SourceCursor(3, 0), 0, 0, 1), 21, Retain).Committed();
        var (_, plan, finished) = nothingPending.DrainRequested(1, BadRowsMode.Fail, null, endOfInput: true).Next().Next.Planned(null, 3);
        Assert.Null(plan);
        Assert.True(finished);
        Assert.Null(BatchCoordination.Initial.DrainRequested(1, BadRowsMode.Fail, null, endOfInput: true).Next().Next.Planned(null, -1).Plan);
    }

    [Fact]
    public void Polling_never_finishes_and_plans_up_to_every_commit_there_is()
    {
        var (polling, step) = BatchCoordination.Initial.PollingRequested(1, BadRowsMode.Fail).Next();
        Assert.Equal(BatchCoordination.NoVersionLimit, Assert.IsType<CoordinatorStep.PlanBatch>(step).UpToVersion);

        var (idle, _, finished) = polling.Planned(null, 3);
        Assert.False(finished);
        Assert.False(idle.Busy);
        Assert.Null(idle.DrainUpToVersion);
    }

    [Fact]
    public void A_batch_in_flight_is_replayed_before_a_requested_rewind_and_the_rewind_follows()
    {
        var committed = Commit(BatchCoordination.Initial, 3);
        var inFlight = committed.Apply(new BatchPlanned(PlanFor(committed.State)), 7, Retain);

        var (replaying, step) = inFlight.DrainRequested(1, BadRowsMode.Fail, fromBatch: 1).Next();
        Assert.Equal(3, Assert.IsType<CoordinatorStep.ReplayBatch>(step).Plan.Batch);
        Assert.True(replaying.Replaying);

        var afterReplay = replaying.Apply(new BatchCommitted(3, new SourceCursor(4, 0), 1, 1, 0), 8, Retain).Committed();
        var (rewinding, rewind) = afterReplay.Next();
        Assert.Equal(new CoordinatorStep.BeginRewind(1), rewind);
        Assert.False(rewinding.Replaying);
        Assert.Null(rewinding.RewindRequested);
    }

    [Fact]
    public void A_rewind_interrupted_by_a_crash_is_resumed_before_anything_is_planned()
    {
        var committed = Commit(BatchCoordination.Initial, 3);
        var rewinding = committed.Apply(new RewindStarted(2), 7, Retain) with { Request = null };

        var (_, step) = rewinding.PollingRequested(1, BadRowsMode.Fail).Next();

        Assert.Equal(new CoordinatorStep.ResumeRewind(2), step);
    }

    [Theory]
    [InlineData(-1, "batch -1 does not exist: batches are numbered from 0")]
    [InlineData(5, "batch 5 has not been committed yet (the next batch is 4)")]
    [InlineData(0, "batch 0 is no longer retained; retained checkpoints: batches 1..3")]
    public void A_rewind_to_a_batch_without_a_checkpoint_is_refused_with_what_is_retained(long from, string reason)
    {
        var committed = Commit(BatchCoordination.Initial, 4);

        var (refused, step) = committed.DrainRequested(1, BadRowsMode.Fail, from).Next();

        Assert.Equal(new CoordinatorStep.RefuseRewind(reason), step);
        Assert.False(refused.Failed().Busy);
        Assert.Null(refused.RewindRequested);
    }

    [Fact]
    public void A_rewind_to_the_next_batch_is_allowed_and_takes_nothing_back_but_uncommitted_output()
    {
        var committed = Commit(BatchCoordination.Initial, 2);

        var (_, step) = committed.DrainRequested(1, BadRowsMode.Fail, 2).Next();

        Assert.Equal(new CoordinatorStep.BeginRewind(2), step);
    }

    [Fact]
    public void The_batch_after_one_in_flight_is_planned_as_Next_will_plan_it()
    {
        var plan = PlanFor(CoordinatorState.Initial);
        var (polling, _) = BatchCoordination.Initial.PollingRequested(4, BadRowsMode.Fail).Next();
        Assert.Equal(new CoordinatorStep.PlanBatch(1, plan.To, 4, BatchCoordination.NoVersionLimit), polling.PlanAfter(plan));

        var (draining, _) = BatchCoordination.Initial.DrainRequested(2, BadRowsMode.Fail, null).Next();
        var (planned, _, _) = draining.Planned(plan, upToVersion: 7);
        Assert.Equal(new CoordinatorStep.PlanBatch(1, plan.To, 2, 7), planned.PlanAfter(plan));

        Assert.Null(polling.PlanAfter(plan with { EndOfInput = true }));
        Assert.Null(BatchCoordination.Initial.PlanAfter(plan));
    }
}

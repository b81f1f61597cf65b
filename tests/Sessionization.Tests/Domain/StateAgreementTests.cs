using Sessionization.Domain;

namespace Sessionization.Tests.Domain;

public sealed class StateAgreementTests
{
    [Fact]
    public void State_and_tables_at_the_same_batch_agree_and_quarantine_may_lag()
    {
        var state = Batches(3);

        Assert.Null(StateAgreement.Check(state, Tables(2, 2, quarantine: null)));
        Assert.Null(StateAgreement.Check(state, Tables(2, 2, quarantine: 1)));
        Assert.Null(StateAgreement.Check(CoordinatorState.Initial, Tables(null, null, null)));
    }

    [Fact]
    public void Tables_that_already_hold_the_batch_in_flight_agree()
    {
        var state = Batches(2);
        var plan = new BatchPlan(2, state.Cursor, new SourceCursor(9, 0), [new SourceFile(8, 0, "f", 1)]);
        state = state.Apply(new BatchPlanned(plan), 99, 100);

        // The sink wrote sessions but not pending_sessions before a crash.
        Assert.Null(StateAgreement.Check(state, Tables(1, 2, quarantine: 2)));
    }

    [Fact]
    public void A_lost_state_is_refused_with_the_rebuild_named()
    {
        var problem = StateAgreement.Check(CoordinatorState.Initial, Tables(4, 4, null));

        Assert.StartsWith("the state has no record of the batches 0..4 that pending_sessions holds", problem);
        Assert.Contains("--from-batch 0", problem);
        Assert.Null(StateAgreement.Check(CoordinatorState.Initial, Tables(4, 4, null), rewindTo: 0));
    }

    [Fact]
    public void An_older_state_or_older_tables_are_refused_with_the_rewind_that_brings_them_together()
    {
        var state = Batches(3);

        var newerTables = StateAgreement.Check(state, Tables(5, 5, null));
        Assert.Contains("pending_sessions holds batches through 5 but the state only through 2", newerTables);
        Assert.Contains("--from-batch 3", newerTables);
        Assert.Null(StateAgreement.Check(state, Tables(5, 5, null), rewindTo: 3));

        var olderTables = StateAgreement.Check(state, Tables(1, 1, null));
        Assert.Contains("holds batches through 1 but the state through 2", olderTables);
        Assert.Contains("--from-batch 2", olderTables);
        Assert.Null(StateAgreement.Check(state, Tables(1, 1, null), rewindTo: 2));
        // A rewind further forward than the tables reach does not bring them together.
        Assert.NotNull(StateAgreement.Check(state, Tables(0, 0, null), rewindTo: 2));

        var removed = StateAgreement.Check(state, Tables(null, null, null));
        Assert.Contains("pending_sessions holds no batches but the state holds batches through 2", removed);
    }

    [Fact]
    public void A_quarantine_table_ahead_of_the_state_is_refused()
    {
        Assert.Contains("quarantine holds batches through 7", StateAgreement.Check(Batches(3), Tables(2, 2, quarantine: 7)));
    }

    private static IReadOnlyList<TableBatch> Tables(long? pending, long? completed, long? quarantine) =>
    [
        new("pending_sessions", pending, EveryBatch: true),
        new("sessions", completed, EveryBatch: true),
        new("quarantine", quarantine, EveryBatch: false),
    ];

    private static CoordinatorState Batches(int count)
    {
        var state = CoordinatorState.Initial;
        long seq = 0;
        for (var b = 0; b < count; b++)
        {
            var plan = new BatchPlan(b, state.Cursor, new SourceCursor(b, 1), [new SourceFile(b, 0, $"f{b}", 1)]);
            state = state.Apply(new BatchPlanned(plan), ++seq, 100).Apply(new BatchCommitted(b, plan.To, 1, 1, 0), ++seq, 100);
        }

        return state;
    }
}

namespace Sessionization.Domain;

public interface ICoordinatorEvent : IPersistedRecord;

/// <summary>A batch was planned; recorded before any of it is dispatched so that a restart replays the same batch.</summary>
public sealed record BatchPlanned(BatchPlan Plan) : ICoordinatorEvent;

/// <summary>A batch's output is durable in both session tables; the cursor moves past it.</summary>
public sealed record BatchCommitted(long Batch, SourceCursor Cursor, long Visits, long Pending, long Completed) : ICoordinatorEvent;

/// <summary>Summary of the last committed batch, kept for <c>status</c>.</summary>
public sealed record CommittedBatch(long Batch, long LastVersion, long Visits, long Pending, long Completed);

/// <summary>
/// The batch coordinator's whole state: where the source cursor stands, the next batch number, the batch in
/// flight if any. A snapshot of it after each commit is a checkpoint.
/// </summary>
public sealed record CoordinatorState(long NextBatch, SourceCursor Cursor, BatchPlan? InFlight, CommittedBatch? LastCommitted) : IPersistedRecord
{
    public static CoordinatorState Initial { get; } = new(0, SourceCursor.Start, null, null);

    public CoordinatorState Apply(ICoordinatorEvent @event) => @event switch
    {
        BatchPlanned e when InFlight is null && e.Plan.Batch == NextBatch && e.Plan.From == Cursor => this with { InFlight = e.Plan },
        BatchCommitted e when InFlight is not null && InFlight.Batch == e.Batch => new CoordinatorState(
            e.Batch + 1, e.Cursor, null, new CommittedBatch(e.Batch, InFlight.LastVersion, e.Visits, e.Pending, e.Completed)),
        _ => throw new InvalidOperationException($"{@event} does not follow coordinator state (next batch {NextBatch}, in flight {InFlight?.Batch})"),
    };
}

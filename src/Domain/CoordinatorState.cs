namespace Sessionization.Domain;

public interface ICoordinatorEvent : IPersistedRecord;

/// <summary>
/// A batch was planned; recorded before any of it is dispatched so that a restart replays the same batch. It carries
/// the session rules it runs under (<see cref="Domain.SessionRules.Describe"/>): the first batch's become the state's.
/// </summary>
public sealed record BatchPlanned(BatchPlan Plan, string? SessionRules = null) : ICoordinatorEvent;

/// <summary>
/// A batch's output is durable in the session tables; the cursor moves past it. <paramref name="LatestVisitMicros"/>
/// is the latest <c>visit_time</c> among its visits (null: none, or recorded before it was kept);
/// <paramref name="WatermarkMicros"/> the event-time watermark after it (null in batches mode). In event-time mode
/// <paramref name="Pending"/> counts every session open after the batch.
/// </summary>
public sealed record BatchCommitted(long Batch, SourceCursor Cursor, long Visits, long Pending, long Completed, long? LatestVisitMicros = null, long? WatermarkMicros = null) : ICoordinatorEvent;

/// <summary>
/// A rewind to the checkpoint at the start of <paramref name="Batch"/> began: the cursor and batch number go back
/// at once; the user sessions and tables are taken back before any new batch is planned.
/// </summary>
public sealed record RewindStarted(long Batch) : ICoordinatorEvent;

/// <summary>The user sessions and tables have been taken back to the start of <paramref name="Batch"/>.</summary>
public sealed record RewindCompleted(long Batch) : ICoordinatorEvent;

/// <summary>Summary of a committed batch, kept for <c>status</c> and for the one-line report.</summary>
public sealed record CommittedBatch(long Batch, long LastVersion, long Visits, long Pending, long Completed);

/// <summary>
/// A retained checkpoint: the coordinator's position at the start of <see cref="Batch"/>, and where that batch
/// took it. <see cref="CommitSequenceNr"/> is the journal position of the batch's commit, where the snapshot after
/// it was taken. <see cref="LatestVisitBefore"/> is the latest <c>visit_time</c> committed before the batch, which a
/// rewind to it restores, and so are <see cref="WatermarkBefore"/> and <see cref="OpenBefore"/>, the sessions open before it.
/// </summary>
public sealed record Checkpoint(long Batch, SourceCursor From, SourceCursor To, CommittedBatch Summary, long CommitSequenceNr, long? LatestVisitBefore = null, long? WatermarkBefore = null)
{
    public long? OpenBefore { get; init; }
}

/// <summary>
/// The batch coordinator's whole state: where the source cursor stands, the next batch number, the batch in
/// flight if any, a rewind in progress if any, the retained checkpoints, and the latest <c>visit_time</c> of all
/// committed batches (what an event-time watermark is taken from), the event-time watermark, and the session rules
/// its first batch recorded. A snapshot of it after each commit is a checkpoint.
/// </summary>
public sealed record CoordinatorState(
    long NextBatch,
    SourceCursor Cursor,
    BatchPlan? InFlight,
    long? RewindingTo,
    IReadOnlyList<Checkpoint> Checkpoints,
    long? LatestVisitMicros = null,
    long? WatermarkMicros = null,
    string? SessionRules = null) : IPersistedRecord
{
    public static CoordinatorState Initial { get; } = new(0, SourceCursor.Start, null, null, []) { Open = 0 };

    /// <summary>
    /// Sessions open after the last committed batch, kept across a rewind that takes back every retained checkpoint
    /// (null in a snapshot older than it: <see cref="OpenSessions"/> then reads the last checkpoint's count).
    /// </summary>
    public long? Open { get; init; }

    /// <summary>Sessions open after the last committed batch, or before the batch a rewind went back to.</summary>
    public long OpenSessions => Open ?? LastCommitted?.Pending ?? 0;

    public CommittedBatch? LastCommitted => Checkpoints.Count == 0 ? null : Checkpoints[^1].Summary;

    /// <summary>The batches whose starting checkpoint is retained, oldest first.</summary>
    public IEnumerable<long> RetainedBatches => Checkpoints.Select(c => c.Batch);

    public bool CanRewindTo(long batch) => batch == NextBatch || Checkpoints.Any(c => c.Batch == batch);

    /// <summary>Folds <paramref name="event"/> in; <paramref name="sequenceNr"/> is its journal position, <paramref name="retain"/> how many checkpoints to keep.</summary>
    public CoordinatorState Apply(ICoordinatorEvent @event, long sequenceNr, int retain) => @event switch
    {
        BatchPlanned e when InFlight is null && RewindingTo is null && e.Plan.Batch == NextBatch && e.Plan.From == Cursor =>
            this with { InFlight = e.Plan, SessionRules = SessionRules ?? e.SessionRules },
        BatchCommitted e when InFlight is not null && InFlight.Batch == e.Batch => this with
        {
            NextBatch = e.Batch + 1,
            Cursor = e.Cursor,
            InFlight = null,
            Checkpoints = [.. Checkpoints.Skip(Math.Max(0, Checkpoints.Count + 1 - retain)),
                new Checkpoint(e.Batch, InFlight.From, e.Cursor, new CommittedBatch(e.Batch, InFlight.LastVersion, e.Visits, e.Pending, e.Completed), sequenceNr, LatestVisitMicros, WatermarkMicros)
                {
                    OpenBefore = Open ?? LastCommitted?.Pending,
                }],
            Open = e.Pending,
            LatestVisitMicros = Latest(LatestVisitMicros, e.LatestVisitMicros),
            WatermarkMicros = e.WatermarkMicros ?? WatermarkMicros,
        },
        RewindStarted e when InFlight is null && CanRewindTo(e.Batch) => this with
        {
            NextBatch = e.Batch,
            Cursor = e.Batch == NextBatch ? Cursor : Checkpoints.Single(c => c.Batch == e.Batch).From,
            RewindingTo = e.Batch,
            Checkpoints = [.. Checkpoints.Where(c => c.Batch < e.Batch)],
            LatestVisitMicros = e.Batch == NextBatch ? LatestVisitMicros : Checkpoints.Single(c => c.Batch == e.Batch).LatestVisitBefore,
            WatermarkMicros = e.Batch == NextBatch ? WatermarkMicros : Checkpoints.Single(c => c.Batch == e.Batch).WatermarkBefore,
            Open = e.Batch == NextBatch ? Open : Checkpoints.Single(c => c.Batch == e.Batch).OpenBefore,
            // Back at the start nothing was made under any rules yet: the next first batch records its own.
            SessionRules = e.Batch == 0 ? null : SessionRules,
        },
        RewindCompleted e when RewindingTo == e.Batch => this with { RewindingTo = null },
        _ => throw new InvalidOperationException(
            $"{@event} does not follow coordinator state (next batch {NextBatch}, in flight {InFlight?.Batch}, rewinding to {RewindingTo})"),
    };

    public bool Equals(CoordinatorState? other) =>
        other is not null && NextBatch == other.NextBatch && Cursor == other.Cursor && Equals(InFlight, other.InFlight)
        && RewindingTo == other.RewindingTo && Checkpoints.SequenceEqual(other.Checkpoints) && LatestVisitMicros == other.LatestVisitMicros
        && WatermarkMicros == other.WatermarkMicros && SessionRules == other.SessionRules && Open == other.Open;

    private static long? Latest(long? a, long? b) => a is null ? b : b is null ? a : Math.Max(a.Value, b.Value);

    public override int GetHashCode() => HashCode.Combine(NextBatch, Cursor, RewindingTo, Checkpoints.Count);
}

namespace Sessionization.Domain;

/// <summary>
/// What the coordinator was asked to do: drain what is committed and stop, or poll until stopped. A drain with
/// <see cref="EndOfInput"/> closes every session still pending once the visits are drained.
/// </summary>
public sealed record CoordinatorRequest(bool Drain, int MaxFilesPerBatch, BadRowsMode BadRows, bool EndOfInput = false);

/// <summary>What the coordinator does next, as <see cref="BatchCoordination.Next"/> decides it.</summary>
public abstract record CoordinatorStep
{
    private CoordinatorStep()
    {
    }

    /// <summary>A batch planned before a crash or failure runs again exactly as planned.</summary>
    public sealed record ReplayBatch(BatchPlan Plan) : CoordinatorStep;

    /// <summary>A rewind interrupted by a crash runs again; each of its steps is idempotent.</summary>
    public sealed record ResumeRewind(long Batch) : CoordinatorStep;

    /// <summary>A requested rewind to a retained checkpoint: record that it started, then take everything back.</summary>
    public sealed record BeginRewind(long Batch) : CoordinatorStep;

    /// <summary>A requested rewind to a batch that has no checkpoint: the run fails with the reason.</summary>
    public sealed record RefuseRewind(string Reason) : CoordinatorStep;

    /// <summary>
    /// Plan the next batch from <paramref name="Cursor"/>, taking commits up to <paramref name="UpToVersion"/>, or up to
    /// the visits table's latest version when null (a drain run's first look fixes its limit).
    /// </summary>
    public sealed record PlanBatch(long Batch, SourceCursor Cursor, int MaxFilesPerBatch, long? UpToVersion) : CoordinatorStep;
}

/// <summary>
/// The batch coordinator's decisions, kept out of the actor as Akka's own <c>ShardCoordinator</c> keeps its own: the
/// durable <see cref="CoordinatorState"/> plus what the current request needs (whether a batch or rewind is under
/// way, a drain's version limit, a requested rewind), all immutable. Each method answers the next coordination and
/// what to do; the actor persists, starts children and reports.
/// </summary>
public sealed record BatchCoordination(
    CoordinatorState State,
    CoordinatorRequest? Request,
    bool Busy,
    long? DrainUpToVersion,
    long? RewindRequested,
    int BatchesThisRun,
    bool Replaying,
    bool ClosedInput = false)
{
    /// <summary>Polling looks at every commit there is when it plans.</summary>
    public const long NoVersionLimit = long.MaxValue;

    public static BatchCoordination Initial { get; } = new(CoordinatorState.Initial, null, false, null, null, 0, false);

    public BatchCoordination Apply(ICoordinatorEvent @event, long sequenceNr, int retain) =>
        this with { State = State.Apply(@event, sequenceNr, retain) };

    /// <summary>
    /// A drain run: every visit committed when it starts, as batches. A rewind asked for with it waits for a batch in
    /// flight, so that the rewind takes back everything the batch touched; whether the batch is retained is checked then.
    /// </summary>
    public BatchCoordination DrainRequested(int maxFilesPerBatch, BadRowsMode badRows, long? fromBatch, bool endOfInput = false) => this with
    {
        Request = new CoordinatorRequest(true, maxFilesPerBatch, badRows, endOfInput),
        DrainUpToVersion = null,
        BatchesThisRun = 0,
        RewindRequested = fromBatch,
        ClosedInput = false,
    };

    public BatchCoordination PollingRequested(int maxFilesPerBatch, BadRowsMode badRows) =>
        this with { Request = new CoordinatorRequest(false, maxFilesPerBatch, badRows) };

    /// <summary>What to do now; null while a batch or rewind is under way, or before anything was asked.</summary>
    public (BatchCoordination Next, CoordinatorStep? Step) Next()
    {
        if (Busy || Request is null)
            return (this, null);
        var busy = this with { Busy = true, Replaying = false };
        if (State.InFlight is { } inFlight)
            return (busy with { Replaying = true }, new CoordinatorStep.ReplayBatch(inFlight));
        if (State.RewindingTo is { } rewinding)
            return (busy, new CoordinatorStep.ResumeRewind(rewinding));
        if (RewindRequested is { } requested)
        {
            busy = busy with { RewindRequested = null };
            return State.CanRewindTo(requested)
                ? (busy, new CoordinatorStep.BeginRewind(requested))
                : (busy, new CoordinatorStep.RefuseRewind(RewindRefusal(requested)));
        }

        return (busy, PlanFrom(State.NextBatch, State.Cursor, Request));
    }

    /// <summary>
    /// How the batch after <paramref name="plan"/> would be planned under the current request (null: none), as
    /// <see cref="Next"/> will plan it once <paramref name="plan"/> commits; for reading its visits ahead.
    /// </summary>
    public CoordinatorStep.PlanBatch? PlanAfter(BatchPlan plan) =>
        Request is null || plan.EndOfInput ? null : PlanFrom(plan.Batch + 1, plan.To, Request);

    private CoordinatorStep.PlanBatch PlanFrom(long batch, SourceCursor cursor, CoordinatorRequest request) =>
        new(batch, cursor, request.MaxFilesPerBatch, request.Drain ? DrainUpToVersion : NoVersionLimit);

    /// <summary>
    /// The planner looked at commits up to <paramref name="upToVersion"/> and found <paramref name="plan"/>, or nothing
    /// to do; a drain run keeps the limit of its first look, so it always ends. Answers the batch to run, if any, and
    /// whether the drain run is finished. A drain at the end of input that finds nothing new while sessions are still
    /// pending runs one batch with no files: under the batch rule a session not extended in a batch closes in it, so
    /// that batch closes them all, and the run ends after it.
    /// </summary>
    /// <remarks>
    /// A worker that found nothing new is given <paramref name="idleWatermark"/> once its source has been quiet for its
    /// idle-close time: when that moves the watermark and sessions are open, it runs a batch with no files at that
    /// watermark, so they close although no visit comes.
    /// </remarks>
    public (BatchCoordination Next, BatchPlan? Plan, bool Finished) Planned(BatchPlan? plan, long upToVersion, long? idleWatermark = null)
    {
        var next = Request is { Drain: true } ? this with { DrainUpToVersion = DrainUpToVersion ?? upToVersion } : this;
        if (plan is not null)
            return (next, plan, false);
        // Once per run: a closing batch that leaves sessions open (it should not) does not make the run go on forever.
        if (Request is { Drain: true, EndOfInput: true } && !ClosedInput && State.OpenSessions > 0)
            return (next with { ClosedInput = true }, ClosingBatch(), false);
        if (Request is { Drain: false } && idleWatermark is { } idle && State.OpenSessions > 0 && idle > (State.WatermarkMicros ?? Watermark.None))
            return (next, IdleBatch(idle), false);
        return (next with { Busy = false }, null, Request is { Drain: true });
    }

    /// <summary>A batch that reads nothing: every session pending after the last batch closes in it.</summary>
    public BatchPlan ClosingBatch() => new(State.NextBatch, State.Cursor, State.Cursor, [], EndOfInput: true);

    /// <summary>A batch that reads nothing and moves the watermark to <paramref name="watermark"/>.</summary>
    public BatchPlan IdleBatch(long watermark) => new(State.NextBatch, State.Cursor, State.Cursor, [], WatermarkAtLeast: watermark);

    /// <summary>
    /// Why the state cannot be used under <paramref name="rules"/> (null: it can). A rewind to batch 0, asked for now
    /// or under way, reprocesses every visit under the new rules, so it is never refused for them.
    /// </summary>
    public string? RulesRefusal(SessionRules rules) =>
        RewindRequested == 0 || State.RewindingTo == 0 ? null : rules.Mismatch(SessionRules.RecordedIn(State));

    /// <summary>The batch in flight is committed (its event applied with <see cref="Apply"/>); the next step may follow.</summary>
    public BatchCoordination Committed() => this with { Busy = false, BatchesThisRun = BatchesThisRun + 1 };

    /// <summary>A rewind finished (its event applied); the next step may follow.</summary>
    public BatchCoordination Rewound() => this with { Busy = false };

    /// <summary>A batch, plan or rewind failed: a worker tries again at its next poll, a drain run ends.</summary>
    public BatchCoordination Failed() => this with { Busy = false };

    public string RewindRefusal(long from)
    {
        if (from < 0)
            return $"batch {from} does not exist: batches are numbered from 0";
        if (from >= State.NextBatch)
            return $"batch {from} has not been committed yet (the next batch is {State.NextBatch})";
        var retained = State.RetainedBatches.ToList();
        return retained.Count == 0
            ? $"batch {from} is no longer retained; no checkpoints are retained"
            : $"batch {from} is no longer retained; retained checkpoints: batches {string.Join(", ", Ranges(retained))}";
    }

    private static IEnumerable<string> Ranges(List<long> batches)
    {
        for (var i = 0; i < batches.Count;)
        {
            var j = i;
            while (j + 1 < batches.Count && batches[j + 1] == batches[j] + 1)
                j++;
            yield return i == j ? $"{batches[i]}" : $"{batches[i]}..{batches[j]}";
            i = j + 1;
        }
    }
}

using System.Diagnostics;
using Akka.Actor;
using Akka.Event;
using Akka.Streams;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.SinkProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Carries one planned event-time batch through: reads its visits, sets aside the late ones (quarantine, reason
/// <c>late</c>), works out the watermark after the batch, steps the users the batch touches through the session policy
/// against the keyed state store (<see cref="EventTimeBatchWork"/>: users with visits, and users whose deadline the
/// watermark reached), hands the rows to the sink and reports back. The users' sessions live in the store between
/// batches, keyed by user like a Flink or Kafka Streams state store, rather than in one live actor each: a batch's
/// cost then follows the users it touches, not the sessions that stay open. It holds no durable state: a batch it did
/// not finish is run again from its plan, and the store is taken back to before the batch first.
/// </summary>
public sealed class EventTimeBatchExecution : ReceiveActor
{
    private readonly BatchPlan _plan;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly long _startedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    private Stepped? _stepped;

    public EventTimeBatchExecution(BatchPlan plan, EventTimeInput input, BadRowsMode badRows, string baseDirectory, EventTimeStateStore store, EventTimeSessionPolicy policy, IActorRef sink)
    {
        _plan = plan;
        Receive<Stepped>(stepped =>
        {
            _stepped = stepped;
            var r = stepped.Result;
            sink.Tell(new WriteBatch(
                plan.Batch,
                ByUser(r.Written),
                ByUser(r.OpenOfChangedUsers),
                stepped.Quarantined,
                new BatchProvenance(plan.Batch, plan.From, plan.To, plan.LastVersion, stepped.Visits, input.Rules) { StartedAtMillis = _startedAt },
                ByUser(r.Removed))
            {
                StatesSaved = stepped.Saved,
            });
            Context.Parent.Tell(new EventTimeBatchStepped(plan, stepped.WatermarkAfter));
        });
        Receive<BatchWritten>(_ =>
        {
            ApplyStateLogIfFull(store, plan.Batch);
            Written(input);
        });
        Receive<BatchWriteFailed>(f => Fail($"batch {plan.Batch}: writing sessions failed: {f.Reason}"));
        Receive<Status.Failure>(f => Fail($"batch {plan.Batch}: {Failures.Message(f.Cause)}"));

        StepAsync(plan, input, badRows, baseDirectory, store, policy, Context.Materializer()).PipeTo(Self);
    }

    public static Props Props(BatchPlan plan, EventTimeInput input, BadRowsMode badRows, string baseDirectory, EventTimeStateStore store, EventTimeSessionPolicy policy, IActorRef sink) =>
        Akka.Actor.Props.Create(() => new EventTimeBatchExecution(plan, input, badRows, baseDirectory, store, policy, sink));

    /// <summary>
    /// The batch is committed: bringing the store's users table up to date from its log is upkeep, done while the next
    /// batch reads and steps its users (its save waits for it), and not part of this batch.
    /// </summary>
    private static void ApplyStateLogIfFull(EventTimeStateStore store, long batch)
    {
        if (store.ApplyLogIfFull() is { } applying)
            _ = WarnIfFailedAsync(applying, batch, Context.GetLogger());
    }

    /// <summary>An application that failed is a warning: the log stays as it was, and a later batch applies it.</summary>
    private static async Task WarnIfFailedAsync(Task applying, long batch, ILoggingAdapter log)
    {
        try
        {
            await applying;
        }
        catch (Exception e)
        {
            log.Warning("after batch {Batch}: the event-time state log was not written into the users table (it stays, and a later batch tries again): {Reason}", batch, Failures.Message(e));
        }
    }

    /// <param name="Saved">Completes when the users' states are durable: the batch's commits wait for it.</param>
    private sealed record Stepped(EventTimeBatchResult Result, long Visits, List<QuarantinedVisit> Quarantined, long Late, long? LatestVisitMicros, long WatermarkAfter, Task Saved);

    private static async Task<Stepped> StepAsync(
        BatchPlan plan, EventTimeInput input, BadRowsMode badRows, string baseDirectory, EventTimeStateStore store, EventTimeSessionPolicy policy, IMaterializer materializer)
    {
        var readAhead = input.ReadAhead is { } r ? await r.ForAsync(plan, badRows, input.WatermarkBefore) : null;
        var (byUser, quarantined, visits, late, latest) = readAhead ?? await PrepareAsync(plan, badRows, baseDirectory, input.WatermarkBefore, policy, materializer);

        // Late visits move the watermark too: they were committed, and the watermark follows what was committed.
        var after = Watermark.After(input.WatermarkBefore, latest, policy.Settings.WatermarkDelayMicros);
        if (plan.WatermarkAtLeast is { } atLeast)
            after = Math.Max(after, atLeast);
        EventTimeBatchResult result;
        try
        {
            result = await EventTimeBatchWork.RunAsync(store, policy, plan.Batch, byUser, input.WatermarkBefore, after, plan.EndOfInput, input.Known, input.Deadlines, waitForSave: false);
        }
        catch (Exception e) when (e is System.Data.Common.DbException or IOException)
        {
            throw StatesFailed(e);
        }

        if (result.Late.Count > 0)
        {
            // The batch is run again, and its take-back must find this attempt's save finished, not still writing.
            await result.Saved.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            throw new InvalidOperationException($"{result.Late.Count} visits were found late after the late ones were set aside");
        }

        return new Stepped(result, visits, quarantined, late, latest, after, SavedAsync(result.Saved));
    }

    /// <summary>
    /// Reads the plan's visits files and splits their visits: the late ones (against <paramref name="watermarkBefore"/>,
    /// the watermark before the batch) set aside for quarantine, the rest grouped by user. Touches no state, so the
    /// coordinator may run it for the next batch while this one commits (<see cref="PreparedVisits"/>).
    /// </summary>
    public static async Task<BatchVisits> PrepareAsync(
        BatchPlan plan, BadRowsMode badRows, string baseDirectory, long watermarkBefore, EventTimeSessionPolicy policy, IMaterializer materializer)
    {
        var reads = await BatchExecution.ReadFilesAsync(plan, badRows, baseDirectory, materializer);
        var quarantined = new List<QuarantinedVisit>();
        long visits = 0;
        long late = 0;
        long? latest = null;
        for (var f = 0; f < reads.Count; f++)
        {
            var read = reads[f];
            quarantined.AddRange(read.Quarantined);
            visits += read.Visits.Count;
            // Rows are numbered only for a file with a late visit: most files have none.
            long?[]? rows = null;
            for (var i = 0; i < read.Visits.Count; i++)
            {
                var visit = read.Visits[i];
                latest = latest is { } l ? Math.Max(l, visit.VisitTimeMicros) : visit.VisitTimeMicros;
                // Lateness depends on the watermark before the batch alone, so it is decided here, where the file and
                // row are known, and never reaches the users' state.
                if (!policy.IsLate(visit.VisitTimeMicros, watermarkBefore))
                    continue;
                late++;
                rows ??= RowNumbers(read);
                quarantined.Add(new QuarantinedVisit(plan.Batch, plan.Files[f].Path, rows[i], visit.UserId, visit.VisitTimeMicros, visit.Page, LateReason(watermarkBefore)));
            }
        }

        var byUser = VisitsByUser.From(
            reads.Select(r => (IReadOnlyList<Visit>)r.Visits).ToList(), late == 0 ? null : visit => !policy.IsLate(visit.VisitTimeMicros, watermarkBefore));
        return new BatchVisits(byUser, quarantined, visits, late, latest);
    }

    private static async Task SavedAsync(Task saving)
    {
        try
        {
            await saving;
        }
        catch (Exception e) when (e is System.Data.Common.DbException or IOException)
        {
            throw StatesFailed(e);
        }
    }

    private static InvalidOperationException StatesFailed(Exception e) => new($"the event-time session states: {Failures.Message(e)}", e);

    /// <summary>The reason a late visit is set aside with: <c>late</c>, and the watermark it missed.</summary>
    public static string LateReason(long watermarkBefore) => $"late (watermark {Timestamps.ToSparkString(watermarkBefore)})";

    /// <summary>The row in its file of each visit read: the rows set aside as bad are skipped.</summary>
    private static long?[] RowNumbers(VisitsRead read)
    {
        var bad = read.Quarantined.Where(q => q.Row is not null).Select(q => q.Row!.Value).ToHashSet();
        var rows = new long?[read.Visits.Count];
        long row = 0;
        for (var i = 0; i < rows.Length; i++)
        {
            while (bad.Contains(row))
                row++;
            rows[i] = row++;
        }

        return rows;
    }

    /// <summary>
    /// The rows in (user, start, batch) order. The users are stepped in id order, so the rows nearly always come in it
    /// already: one pass that finds them so spares sorting a few hundred thousand rows on the batch's path to the sink.
    /// </summary>
    private static IReadOnlyList<SessionRecord> ByUser(IReadOnlyList<SessionRecord> rows)
    {
        for (var i = 1; i < rows.Count; i++)
        {
            if (InUserOrder(rows[i - 1], rows[i]) > 0)
                return [.. rows.Order(Comparer<SessionRecord>.Create(InUserOrder))];
        }

        return rows;
    }

    private static int InUserOrder(SessionRecord a, SessionRecord b) =>
        a.UserId != b.UserId ? a.UserId.CompareTo(b.UserId)
        : a.StartTimeMicros != b.StartTimeMicros ? a.StartTimeMicros.CompareTo(b.StartTimeMicros)
        : a.BatchNumber.CompareTo(b.BatchNumber);

    private void Written(EventTimeInput input)
    {
        var s = _stepped!;
        var r = s.Result;
        Context.Parent.Tell(new BatchExecuted(
            _plan,
            s.Visits,
            r.UsersStepped,
            input.OpenBefore + r.OpenDelta,
            r.Written.Count,
            s.Quarantined.Count,
            null,
            _clock.Elapsed,
            s.LatestVisitMicros,
            s.WatermarkAfter,
            r.Removed.Count,
            s.Late)
        {
            EventTimeStates = r.States,
            EventTimeDeadlines = r.Deadlines,
        });
        Context.Stop(Self);
    }

    private void Fail(string reason)
    {
        Context.Parent.Tell(new BatchExecutionFailed(_plan.Batch, reason));
        Context.Stop(Self);
    }
}

/// <summary>
/// What an event-time batch starts from besides its plan: the watermark the batch before left, how many sessions were
/// open after it, the session rules (<see cref="SessionRules.Describe"/>) recorded in the batch's commits, and the
/// states of the users the batch before stepped when it ran in this process, and then every stored user's deadline once
/// this process has read them (<see cref="EventTimeBatchWork.RunAsync"/>).
/// </summary>
public sealed record EventTimeInput(long WatermarkBefore, long OpenBefore, string Rules, StateRows? Known = null, DeadlineIndex? Deadlines = null)
{
    /// <summary>The visits read ahead while the batch before committed, if they were (<see cref="PreparedVisits"/>).</summary>
    public PreparedVisits? ReadAhead { get; init; }
}

/// <summary>
/// A batch's visits read and split (<see cref="EventTimeBatchExecution.PrepareAsync"/>): the on-time ones grouped by
/// user, the set-aside ones (bad rows and late visits), how many were read, how many were late, and the latest visit time.
/// </summary>
public sealed record BatchVisits(VisitsByUser ByUser, List<QuarantinedVisit> Quarantined, long Visits, long Late, long? LatestVisitMicros);

/// <summary>
/// The visits of the batch the coordinator expects next (the files its planner would take after the batch before), read
/// while the batch before saves and commits, so that the reading and grouping overlap that batch's tail instead of
/// following it. Read against the watermark after the batch before and in one bad-rows mode.
/// </summary>
public sealed record PreparedVisits(BadRowsMode BadRows, long WatermarkBefore, Task<(BatchPlan Plan, BatchVisits Visits)?> Read)
{
    /// <summary>
    /// The visits, if they were read for <paramref name="plan"/> under the same mode and watermark; otherwise, or if
    /// the read ahead failed, null: the batch reads its files itself, and fails (if it does) with that read's error.
    /// </summary>
    public async Task<BatchVisits?> ForAsync(BatchPlan plan, BadRowsMode badRows, long watermarkBefore)
    {
        if (BadRows != badRows || WatermarkBefore != watermarkBefore)
            return null;
        try
        {
            return await Read is { } read && read.Plan.Equals(plan) ? read.Visits : null;
        }
        catch (Exception)
        {
            return null;
        }
    }
}

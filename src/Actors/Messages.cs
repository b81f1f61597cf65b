using Akka.Actor;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;

namespace Sessionization.Actors;

/// <summary>Messages to and from the per-user session entities and their region.</summary>
public static class UserSessionProtocol
{
    /// <summary>A message for one user's entity: the region routes it by <see cref="UserId"/>.</summary>
    public interface IUserSessionMessage
    {
        long UserId { get; }
    }

    /// <summary>
    /// The one message a user with visits gets per batch: its visits in the batch and, for a user whose entity may
    /// not be live, its state as recovered for the batch (read for all of the batch's users at once;
    /// <see cref="UserSessionState.Empty"/> when it has none). <paramref name="Recovered"/> is null when the user's
    /// session is open and its entity live: the entity answers from memory and never reads the store.
    /// </summary>
    public sealed record ApplyBatch(long UserId, long Batch, IReadOnlyList<PageVisit> Visits, UserSessionState? Recovered) : IUserSessionMessage;

    /// <summary>
    /// The user's session closed in <paramref name="Batch"/> (it got no visit): a live entity lets go of it and
    /// passivates. Sent only where an entity may be live; no answer. Nothing is saved: the stored state reads as
    /// closed from that batch on.
    /// </summary>
    public sealed record CloseSession(long UserId, long Batch) : IUserSessionMessage;

    /// <summary>
    /// The batch's outcome for the user, its new state queued for the store's next group commit (the batch
    /// flushes the store before anything is written); null when the user took no part.
    /// </summary>
    public sealed record BatchApplied(long UserId, long Batch, BatchOutcome? Outcome) : IUserSessionMessage;

    public sealed record BatchApplyFailed(long UserId, long Batch, string Reason) : IUserSessionMessage;

    /// <summary>
    /// A share of a batch's per-user messages, delivered by the region to the users' entities: still one message
    /// per user, carried to each shard together. Answered with one <see cref="UsersAnswered"/> once every
    /// <see cref="ApplyBatch"/> in it is answered.
    /// </summary>
    public sealed record DeliverToUsers(long Batch, IReadOnlyList<IUserSessionMessage> Messages);

    public sealed record UsersAnswered(long Batch, IReadOnlyList<BatchApplied> Applied, IReadOnlyList<BatchApplyFailed> Failed);

    /// <summary>
    /// Stop every live entity: what they hold may be ahead of the store (a batch failed after they applied it) or
    /// behind the tables (a rewind). The users' next batch recovers them from the store.
    /// </summary>
    public sealed class ResetEntities
    {
        public static ResetEntities Instance { get; } = new();

        private ResetEntities()
        {
        }
    }

    public sealed class GetRegionStats
    {
        public static GetRegionStats Instance { get; } = new();

        private GetRegionStats()
        {
        }
    }

    /// <summary>Entities live now, and every entity ever started (a user's second incarnation counts again).</summary>
    public sealed record RegionStats(long LiveEntities, long Incarnations);
}

/// <summary>Messages to and from the session sink.</summary>
public static class SinkProtocol
{
    /// <summary>
    /// One batch's output for the output tables, with where it came from for their commits. <paramref name="CompletedRemoved"/> are <c>sessions</c> rows of earlier batches that this
    /// one takes out (event-time corrections); the same commit writes what replaces them.
    /// </summary>
    public sealed record WriteBatch(
        long Batch,
        IReadOnlyList<SessionRecord> Completed,
        IReadOnlyList<SessionRecord> Pending,
        IReadOnlyList<QuarantinedVisit> Quarantined,
        BatchProvenance Provenance,
        IReadOnlyList<SessionRecord>? CompletedRemoved = null)
    {
        /// <summary>
        /// Completes when what must be durable before the batch's commits (its users' states) is saved; the tables'
        /// files are written meanwhile. Null: it is already.
        /// </summary>
        public Task? StatesSaved { get; init; }
    }

    /// <summary>Both tables hold the batch; a flag is false where it was there already (a replay).</summary>
    public sealed record BatchWritten(long Batch, bool PendingWritten, bool CompletedWritten);

    public sealed record BatchWriteFailed(long Batch, string Reason);

    /// <summary>Take back every batch from <paramref name="Batch"/> on, in all output tables.</summary>
    public sealed record RewindTables(long Batch);

    public sealed record TablesRewound(long Batch);

    public sealed record TablesRewindFailed(long Batch, string Reason);

    /// <summary>Compact the session tables' files of batches before <paramref name="Before"/> (Delta <c>OPTIMIZE</c>).</summary>
    public sealed record CompactTables(long Before, long TargetBytes);

    public sealed record TablesCompacted(long Before, IReadOnlyList<CompactionResult> Results);

    public sealed record TablesCompactionFailed(long Before, string Reason);
}

/// <summary>Messages to and from the batch coordinator.</summary>
public static class CoordinatorProtocol
{
    /// <summary>
    /// Drain-and-exit: process every visit committed when the run starts as batches, then report <see cref="RunFinished"/>.
    /// With <paramref name="FromBatch"/>, first rewind to the checkpoint at the start of that batch.
    /// </summary>
    public sealed record RunUntilDrained(int MaxFilesPerBatch, IActorRef ReportTo, long? FromBatch = null, BadRowsMode BadRows = BadRowsMode.Fail, bool EndOfInput = false);

    /// <summary>A rewind finished: batches from <paramref name="Batch"/> on were taken back and will run again.</summary>
    public sealed record RewindReport(long Batch, long UndoneBatches, long UsersReset);

    /// <summary>The coordinator compacted the session tables' files of batches before <paramref name="Before"/> between two batches.</summary>
    public sealed record CompactionReport(long Before, IReadOnlyList<CompactionResult> Results);

    /// <summary>Long-running: look for new commits every <paramref name="Interval"/> until stopped.</summary>
    public sealed record StartPolling(int MaxFilesPerBatch, TimeSpan Interval, IActorRef ReportTo, BadRowsMode BadRows = BadRowsMode.Fail);

    /// <summary>What formed a batch: new visits, the end of input, or a worker's idle close.</summary>
    public enum BatchKind
    {
        Visits,
        EndOfInput,
        IdleClose,
    }

    /// <summary>One committed batch, for the one-line summary. The init-only figures are event-time mode's.</summary>
    public sealed record BatchReport(
        long Batch, int Files, long FromVersion, long ToVersion, long Visits, long ActiveUsers, long Pending, long Completed, long Quarantined, bool Replayed, TimeSpan Elapsed)
    {
        public BatchKind Kind { get; init; }

        /// <summary>Rows of earlier batches the batch took out of <c>sessions</c>, corrected.</summary>
        public long Corrected { get; init; }

        public long Late { get; init; }

        /// <summary>The event-time watermark after the batch; null in batches mode.</summary>
        public long? WatermarkMicros { get; init; }
    }

    public sealed record RunFinished(int Batches);

    /// <summary>A batch failed: a drain run ends with it; a worker's coordinator has logged it and tries again after its backoff.</summary>
    public sealed record RunFailed(string Reason);

    /// <summary>Published on the event stream when the coordinator cannot go on (its journal or snapshot store failed); it stops after this.</summary>
    public sealed record CoordinatorFailed(string Reason);

    public sealed class GetStatus
    {
        public static GetStatus Instance { get; } = new();

        private GetStatus()
        {
        }
    }

    public sealed record StatusResult(CoordinatorState State);

    /// <summary>Asks a coordinator how it is doing; answered with <see cref="HealthResult"/> once it has recovered.</summary>
    public sealed class GetHealth
    {
        public static GetHealth Instance { get; } = new();

        private GetHealth()
        {
        }
    }

    /// <param name="Polling">A worker's polling has started.</param>
    /// <param name="FailuresInARow">Failed attempts since the last commit.</param>
    /// <param name="RetryAtUtc">When the next attempt is due, while backing off.</param>
    /// <param name="LastFailure">Why the last attempt failed, while backing off.</param>
    public sealed record HealthResult(bool Polling, int FailuresInARow, DateTime? RetryAtUtc, string? LastFailure);
}

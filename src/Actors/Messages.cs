using Akka.Actor;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;

namespace Sessionization.Actors;

/// <summary>Messages to and from the per-user session actors.</summary>
public static class UserSessionProtocol
{
    public interface IUserSessionMessage
    {
        long UserId { get; }
    }

    /// <summary>The one message a user gets per batch: its visits in the batch, empty when its open session should close.</summary>
    public sealed record ApplyBatch(long UserId, long Batch, IReadOnlyList<PageVisit> Visits) : IUserSessionMessage;

    /// <summary>The batch's outcome for the user, after it is persisted; null when the user took no part.</summary>
    public sealed record BatchApplied(long UserId, long Batch, BatchOutcome? Outcome) : IUserSessionMessage;

    public sealed record BatchApplyFailed(long UserId, long Batch, string Reason) : IUserSessionMessage;

    /// <summary>A user actor with no open session asks its parent to stop it.</summary>
    public sealed record Passivate(long UserId) : IUserSessionMessage;
}

/// <summary>Messages to and from the session sink.</summary>
public static class SinkProtocol
{
    /// <summary>One batch's output for both session tables.</summary>
    public sealed record WriteBatch(long Batch, IReadOnlyList<SessionRow> Completed, IReadOnlyList<SessionRow> Pending, long CommitTimeMillis);

    /// <summary>Both tables hold the batch; a flag is false where it was there already (a replay).</summary>
    public sealed record BatchWritten(long Batch, bool PendingWritten, bool CompletedWritten);

    public sealed record BatchWriteFailed(long Batch, string Reason);
}

/// <summary>Messages to and from the batch coordinator.</summary>
public static class CoordinatorProtocol
{
    /// <summary>Drain-and-exit: process every committed visit as batches, then report <see cref="RunFinished"/>.</summary>
    public sealed record RunUntilDrained(int MaxFilesPerBatch, IActorRef ReportTo);

    /// <summary>Long-running: look for new commits every <paramref name="Interval"/> until stopped.</summary>
    public sealed record StartPolling(int MaxFilesPerBatch, TimeSpan Interval, IActorRef ReportTo);

    /// <summary>One committed batch, for the one-line summary.</summary>
    public sealed record BatchReport(
        long Batch, int Files, long FromVersion, long ToVersion, long Visits, long ActiveUsers, long Pending, long Completed, bool Replayed, TimeSpan Elapsed);

    public sealed record RunFinished(int Batches);

    public sealed record RunFailed(string Reason);

    public sealed class GetStatus
    {
        public static GetStatus Instance { get; } = new();

        private GetStatus()
        {
        }
    }

    public sealed record StatusResult(CoordinatorState State);
}

using Akka.Actor;
using Sessionization.Persistence.Tables;
using static Sessionization.Actors.SinkProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Writes each batch's sessions: completed ones to <c>sessions</c>, the batch's pending ones to
/// <c>pending_sessions</c>. Each table commit is idempotent by batch number, so a replayed batch is skipped.
/// </summary>
public sealed class SessionSink : ReceiveActor
{
    public SessionSink(string baseDirectory)
    {
        var pending = SessionTable.Pending(baseDirectory);
        var completed = SessionTable.Completed(baseDirectory);

        Receive<WriteBatch>(m =>
        {
            var replyTo = Sender;
            WriteAsync(pending, completed, m).PipeTo(
                replyTo,
                success: r => r,
                failure: e => new BatchWriteFailed(m.Batch, e is AggregateException a ? a.InnerException!.Message : e.Message));
        });
    }

    public static Props Props(string baseDirectory) => Akka.Actor.Props.Create(() => new SessionSink(baseDirectory));

    private static async Task<BatchWritten> WriteAsync(SessionTable pending, SessionTable completed, WriteBatch m)
    {
        var pendingWritten = await pending.CommitBatchAsync(m.Batch, m.Pending, m.CommitTimeMillis);
        var completedWritten = await completed.CommitBatchAsync(m.Batch, m.Completed, m.CommitTimeMillis);
        return new BatchWritten(m.Batch, pendingWritten, completedWritten);
    }
}

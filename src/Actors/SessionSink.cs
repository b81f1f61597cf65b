using Akka.Actor;
using Sessionization.Persistence.Tables;
using static Sessionization.Actors.SinkProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Writes each batch's output: completed sessions to <c>sessions</c>, the batch's pending sessions to
/// <c>pending_sessions</c>, set-aside visits to <c>quarantine</c>. Each table commit is idempotent by batch
/// number, so a replayed batch is skipped; a rewind takes batches back from all three.
/// </summary>
public sealed class SessionSink : ReceiveActor
{
    public SessionSink(string baseDirectory)
    {
        var pending = SessionTable.Pending(baseDirectory);
        var completed = SessionTable.Completed(baseDirectory);
        var quarantine = QuarantineTable.In(baseDirectory);

        Receive<WriteBatch>(m => WriteAsync(pending, completed, quarantine, m).PipeTo(
            Sender,
            success: r => r,
            failure: e => new BatchWriteFailed(m.Batch, Failures.Message(e))));
        Receive<RewindTables>(m => Task.Run(() =>
            {
                // Quarantine first and pending last: pending_sessions is where a restart learns the open users.
                quarantine.Log.RewindTo(m.Batch, m.CommitTimeMillis);
                completed.RewindTo(m.Batch, m.CommitTimeMillis);
                pending.RewindTo(m.Batch, m.CommitTimeMillis);
                return new TablesRewound(m.Batch);
            })
            .PipeTo(Sender, failure: e => new TablesRewindFailed(m.Batch, Failures.Message(e))));
    }

    public static Props Props(string baseDirectory) => Akka.Actor.Props.Create(() => new SessionSink(baseDirectory));

    private static async Task<BatchWritten> WriteAsync(SessionTable pending, SessionTable completed, QuarantineTable quarantine, WriteBatch m)
    {
        await quarantine.CommitBatchAsync(m.Batch, m.Quarantined, m.CommitTimeMillis);
        var completedWritten = await completed.CommitBatchAsync(m.Batch, m.Completed, m.CommitTimeMillis);
        var pendingWritten = await pending.CommitBatchAsync(m.Batch, m.Pending, m.CommitTimeMillis);
        return new BatchWritten(m.Batch, pendingWritten, completedWritten);
    }
}

using Akka.Actor;
using Sessionization.Persistence.Tables;
using static Sessionization.Actors.SinkProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Writes each batch's output: completed sessions to <c>sessions</c> (with the rows of earlier batches it corrects
/// taken out in the same commit), the batch's pending sessions to <c>pending_sessions</c>, set-aside visits to
/// <c>quarantine</c>. Each table commit is idempotent by batch
/// number, so a replayed batch is skipped; a rewind takes batches back from all three.
/// </summary>
public sealed class SessionSink : ReceiveActor
{
    private PipelineIdentity? _pipeline;

    public SessionSink(string baseDirectory, PipelineIdentity? pipeline, int checkpointInterval)
    {
        _pipeline = pipeline;
        var pending = SessionTable.Pending(baseDirectory, checkpointInterval);
        var completed = SessionTable.Completed(baseDirectory, checkpointInterval);
        var quarantine = QuarantineTable.In(baseDirectory, checkpointInterval);

        Receive<WriteBatch>(m => WriteAsync(pending, completed, quarantine, m, _pipeline ??= Pipelines.Resolve(baseDirectory, create: true)!).PipeTo(
            Sender,
            success: r => r,
            failure: e => new BatchWriteFailed(m.Batch, Failures.Message(e))));
        Receive<RewindTables>(m => Task.Run(() =>
            {
                // Quarantine first and pending last: pending_sessions is where a restart learns the open users.
                quarantine.Log.RewindTo(m.Batch);
                completed.RewindTo(m.Batch);
                pending.RewindTo(m.Batch);
                return new TablesRewound(m.Batch);
            })
            .PipeTo(Sender, failure: e => new TablesRewindFailed(m.Batch, Failures.Message(e))));
        // Only ever asked for between two batches, so no batch's commit races the compaction's.
        Receive<CompactTables>(m => Compaction.OptimizeAsync([pending, completed], m.Before, m.TargetBytes)
            .PipeTo(Sender, success: r => new TablesCompacted(m.Before, r), failure: e => new TablesCompactionFailed(m.Before, Failures.Message(e))));
    }

    /// <summary>The sink for <paramref name="pipeline"/>'s tables; without one, the base directory's tables say (and are created if missing).</summary>
    public static Props Props(string baseDirectory, PipelineIdentity? pipeline = null, int checkpointInterval = Persistence.Delta.DeltaTable.DefaultCheckpointInterval) =>
        Akka.Actor.Props.Create(() => new SessionSink(baseDirectory, pipeline, checkpointInterval));

    /// <summary>
    /// The three tables' files are written at once, each on its own task, while the batch's states may still be saving;
    /// the commits wait for the save and go in order: quarantine, sessions, then pending_sessions, where a restart
    /// learns the open users. A failure anywhere leaves the later tables uncommitted, and the batch is run again.
    /// </summary>
    private static async Task<BatchWritten> WriteAsync(SessionTable pending, SessionTable completed, QuarantineTable quarantine, WriteBatch m, PipelineIdentity pipeline)
    {
        var saved = m.StatesSaved ?? Task.CompletedTask;
        var quarantined = Task.Run(() => quarantine.CommitBatchAsync(m.Batch, m.Quarantined, pipeline, m.Provenance, () => saved));
        var completedWritten = Task.Run(() => completed.CommitBatchAsync(m.Batch, m.Completed, pipeline, m.Provenance, m.CompletedRemoved, async () =>
        {
            await saved;
            await quarantined;
        }));
        var pendingWritten = Task.Run(() => pending.CommitBatchAsync(m.Batch, m.Pending, pipeline, m.Provenance, beforeCommit: async () =>
        {
            await saved;
            await completedWritten;
        }));
        try
        {
            await Task.WhenAll(quarantined, completedWritten, pendingWritten);
        }
        catch (Exception)
        {
            // The failed batch is run again, and its take-back of the states must find this attempt's save finished.
            await saved.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            throw;
        }

        // A batch run again after its tables were committed finds each commit there and skips it, without waiting for
        // the save: it is not written until its states are durable, or the next batch would read them half saved.
        await saved;
        return new BatchWritten(m.Batch, await pendingWritten, await completedWritten);
    }
}

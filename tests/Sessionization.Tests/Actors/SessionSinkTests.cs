using Akka.TestKit.Xunit2;
using Sessionization.Actors;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using static Sessionization.Actors.SinkProtocol;

namespace Sessionization.Tests.Actors;

/// <summary>
/// The sink writes a batch's files while its users' states may still be saving, and commits none of the tables until
/// the save is durable: a save that fails leaves every table without the batch.
/// </summary>
public sealed class SessionSinkTests : TestKit, IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly TempDirectory _temp = new();

    public SessionSinkTests()
        : base(ActorTestConfig.InMemory)
    {
    }

    private WriteBatch Batch(Task saved) => new(
        0,
        [new SessionRecord(1, "a.html -> b.html", 0, 10, 20, 2)],
        [new SessionRecord(2, "c.html", 0, 30, 30, 1)],
        [new QuarantinedVisit(0, "part-0.parquet", 3, 4, 40, "d.html", "late")],
        new BatchProvenance(0, SourceCursor.Start, new SourceCursor(1, 0), 0, 4))
    {
        StatesSaved = saved,
    };

    private bool FilesWritten() =>
        new[] { SessionTable.PendingDirectoryName, SessionTable.CompletedDirectoryName, QuarantineTable.DirectoryName }
            .All(table => Directory.Exists(_temp.Combine(table)) && Directory.EnumerateFiles(_temp.Combine(table), "*.parquet").Any());

    private long?[] CommittedBatches() =>
    [
        SessionTable.Pending(_temp.Path).LastCommittedBatch(),
        SessionTable.Completed(_temp.Path).LastCommittedBatch(),
        QuarantineTable.In(_temp.Path).Log.LastCommittedBatch(),
    ];

    /// <summary>A batch handed to a new sink while its states are still saving, once the sink has written its files.</summary>
    private TaskCompletionSource FilesWrittenWhileSaving()
    {
        var sink = Sys.ActorOf(SessionSink.Props(_temp.Path));
        var saving = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        sink.Tell(Batch(saving.Task), TestActor);
        AwaitCondition(FilesWritten, Patience);
        return saving;
    }

    [Fact]
    public void The_files_are_written_before_the_states_are_saved_and_committed_only_after()
    {
        var saving = FilesWrittenWhileSaving();

        Assert.Equal([null, null, null], CommittedBatches());
        saving.SetResult();
        var written = ExpectMsg<BatchWritten>(Patience);
        Assert.True(written.PendingWritten && written.CompletedWritten);
        Assert.Equal([0L, 0L, 0L], CommittedBatches());
    }

    [Fact]
    public void A_save_that_fails_leaves_every_table_without_the_batch()
    {
        var saving = FilesWrittenWhileSaving();
        saving.SetException(new InvalidOperationException("the event-time session states: disk I/O error"));

        Assert.Equal("the event-time session states: disk I/O error", ExpectMsg<BatchWriteFailed>(Patience).Reason);
        Assert.Equal([null, null, null], CommittedBatches());
    }

    [Fact]
    public void A_batch_run_again_after_its_tables_were_committed_is_written_only_once_its_states_are_saved()
    {
        var sink = Sys.ActorOf(SessionSink.Props(_temp.Path));
        sink.Tell(Batch(Task.CompletedTask), TestActor);
        ExpectMsg<BatchWritten>(Patience);

        // The batch again (a replay after a crash that followed its commits): every table has it, and nothing is committed.
        var saving = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        sink.Tell(Batch(saving.Task), TestActor);

        // A negative check: a sink that does not wait for the save answers at once; one that waits cannot fail it.
        ExpectNoMsg(TimeSpan.FromMilliseconds(500));
        saving.SetResult();
        var written = ExpectMsg<BatchWritten>(Patience);
        Assert.False(written.PendingWritten || written.CompletedWritten);
        Assert.Equal([0L, 0L, 0L], CommittedBatches());
    }

    [Fact]
    public void A_batch_run_again_after_its_tables_were_committed_fails_when_its_save_fails()
    {
        var sink = Sys.ActorOf(SessionSink.Props(_temp.Path));
        sink.Tell(Batch(Task.CompletedTask), TestActor);
        ExpectMsg<BatchWritten>(Patience);

        sink.Tell(Batch(Task.FromException(new InvalidOperationException("the event-time session states: disk I/O error"))), TestActor);

        Assert.Equal("the event-time session states: disk I/O error", ExpectMsg<BatchWriteFailed>(Patience).Reason);
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
            _temp.Dispose();
    }
}

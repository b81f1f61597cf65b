using Akka.Actor;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.SinkProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Takes everything back to the start of one batch: first the user session states (every state saved for that
/// batch or a later one goes, so each user stands where the batch before left it), then the output tables.
/// Each step is idempotent, so a rewind interrupted by a crash is simply run again.
/// </summary>
public sealed class RewindExecution : ReceiveActor
{
    public RewindExecution(long batch, string baseDirectory, IUserStateStore store, IActorRef sink, EventTimeStateStore? eventTimeStore = null)
    {
        long usersReset = 0;
        long undone = 0;
        Receive<UsersReset>(reset =>
        {
            (usersReset, undone) = (reset.Users, reset.Batches);
            sink.Tell(new RewindTables(batch));
        });
        Receive<TablesRewound>(_ =>
        {
            Context.Parent.Tell(new RewindFinished(batch, undone, usersReset));
            Context.Stop(Self);
        });
        Receive<TablesRewindFailed>(f => Fail(f.Reason));
        Receive<Status.Failure>(f => Fail(Failures.Message(f.Cause)));

        ResetUsersAsync(batch, baseDirectory, store, eventTimeStore).PipeTo(Self);

        void Fail(string reason)
        {
            Context.Parent.Tell(new RewindFailed(batch, reason));
            Context.Stop(Self);
        }
    }

    public static Props Props(long batch, string baseDirectory, IUserStateStore store, IActorRef sink, EventTimeStateStore? eventTimeStore = null) =>
        Akka.Actor.Props.Create(() => new RewindExecution(batch, baseDirectory, store, sink, eventTimeStore));

    private sealed record UsersReset(long Users, long Batches);

    private static async Task<UsersReset> ResetUsersAsync(long batch, string baseDirectory, IUserStateStore store, EventTimeStateStore? eventTimeStore)
    {
        long users;
        try
        {
            // Both kinds of state go back: a rewind to batch 0 may be a change of session mode.
            users = await store.RewindAsync(batch);
            if (eventTimeStore is not null)
                users += await eventTimeStore.RewindAsync(batch);
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"resetting the user session states to batch {batch} failed: {Failures.Message(e)}", e);
        }

        // How many batches are undone: every one the output tables hold from this batch on.
        var last = new[] { SessionTable.Pending(baseDirectory), SessionTable.Completed(baseDirectory) }.Max(t => t.LastCommittedBatch() ?? -1);
        return new UsersReset(users, Math.Max(0, last - batch + 1));
    }
}

public sealed record RewindFinished(long Batch, long UndoneBatches, long UsersReset);

public sealed record RewindFailed(long Batch, string Reason);

using Akka.Actor;
using Sessionization.Persistence.Tables;
using static Sessionization.Actors.SinkProtocol;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Takes everything back to the start of one batch: first every user session that took part in that batch
/// or a later one (found from the output tables, which name them), then the output tables themselves. Each
/// step is idempotent, so a rewind interrupted by a crash is simply run again.
/// </summary>
public sealed class Rewind : ReceiveActor, IWithTimers
{
    private readonly long _batch;
    private readonly IActorRef _sink;
    private DispatchWindow? _window;
    private int _usersReset;
    private long _undone;

    public Rewind(long batch, string baseDirectory, IActorRef userSessions, IActorRef sink, TimeSpan timeout, int maxInFlight)
    {
        _batch = batch;
        _sink = sink;

        Receive<Affected>(affected =>
        {
            _undone = affected.Batches;
            if (affected.Users.Count == 0)
            {
                RewindTables();
                return;
            }

            var self = Self;
            _window = new DispatchWindow(affected.Users.Select(u => (object)new RewindTo(u, batch)), maxInFlight, m => userSessions.Tell(m, self));
            _window.Fill();
        });
        Receive<UserRewound>(_ =>
        {
            _usersReset++;
            Timers.StartSingleTimer(TimedOut.Instance, TimedOut.Instance, timeout);
            if (_window!.Answered())
                RewindTables();
        });
        Receive<UserRewindFailed>(f => Fail(f.Reason));
        Receive<BatchApplyFailed>(f => Fail(f.Reason));
        Receive<TablesRewound>(_ =>
        {
            Context.Parent.Tell(new RewindFinished(batch, _undone, _usersReset));
            Context.Stop(Self);
        });
        Receive<TablesRewindFailed>(f => Fail(f.Reason));
        Receive<Status.Failure>(f => Fail(Failures.Message(f.Cause)));
        Receive<TimedOut>(_ => Fail($"no progress for {timeout} with {_window?.Unanswered ?? 0} user sessions still to answer"));

        Timers.StartSingleTimer(TimedOut.Instance, TimedOut.Instance, timeout);
        FindAffectedAsync(batch, baseDirectory).PipeTo(Self);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(long batch, string baseDirectory, IActorRef userSessions, IActorRef sink, TimeSpan timeout, int maxInFlight) =>
        Akka.Actor.Props.Create(() => new Rewind(batch, baseDirectory, userSessions, sink, timeout, maxInFlight));

    private sealed record Affected(IReadOnlyList<long> Users, long Batches);

    private sealed class TimedOut
    {
        public static TimedOut Instance { get; } = new();
    }

    /// <summary>Every user touched by a batch from <paramref name="batch"/> on has a row for it in one of the two session tables.</summary>
    private static async Task<Affected> FindAffectedAsync(long batch, string baseDirectory)
    {
        var users = new SortedSet<long>();
        long lastBatch = batch - 1;
        foreach (var table in new[] { SessionTable.Pending(baseDirectory), SessionTable.Completed(baseDirectory) })
        {
            foreach (var row in await table.ReadAllAsync())
            {
                if (row.BatchNumber < batch)
                    continue;
                users.Add(row.UserId);
                lastBatch = Math.Max(lastBatch, row.BatchNumber);
            }

            lastBatch = Math.Max(lastBatch, table.LastCommittedBatch() ?? -1);
        }

        return new Affected([.. users], lastBatch - batch + 1);
    }

    private void RewindTables() => _sink.Tell(new RewindTables(_batch, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));

    private void Fail(string reason)
    {
        Context.Parent.Tell(new RewindFailed(_batch, reason));
        Context.Stop(Self);
    }
}

public sealed record RewindFinished(long Batch, long UndoneBatches, long UsersReset);

public sealed record RewindFailed(long Batch, string Reason);

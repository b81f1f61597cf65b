using System.Diagnostics;
using Akka.Actor;
using Akka.Streams;
using Akka.Streams.Dsl;
using Sessionization.Actors.Serialization;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.SinkProtocol;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Carries one planned batch through: reads its visits (and, unless the users' entities are live from the batch
/// before, the states of the users they may touch, in one query), sends each user with visits its one
/// <see cref="ApplyBatch"/> and each user whose session the batch closes its <see cref="CloseSession"/> through
/// the user session region, gathers the outcomes, waits until the users' states are durable, hands the outcomes
/// to the sink and reports back to the coordinator. The visits files are read, and the users' messages carried
/// to the region, by Akka.Streams stages with bounded parallelism. It holds no durable state: a batch it did not
/// finish is run again from its plan.
/// </summary>
public sealed class BatchExecution : ReceiveActor, IWithTimers
{
    /// <summary>Shares of a batch's users at the region at once; each share is answered as a whole.</summary>
    private const int SharesInFlight = 4;

    /// <summary>Visits files read and decoded at once.</summary>
    private const int FilesInFlight = 2;

    private readonly BatchPlan _plan;
    private readonly IActorRef _userSessions;
    private readonly IActorRef _sink;
    private readonly IUserStateStore _store;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly long _startedAt = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
    private readonly List<SessionRecord> _pending = [];
    private readonly List<SessionRecord> _completed = [];
    private readonly int _shareSize;
    private readonly TimeSpan _timeout;
    private Loaded? _loaded;
    private long _progress;
    private long _progressAtLastCheck;
    private long _unanswered;
    private IMaterializer? _materializer;

    /// <param name="previousPending">
    /// The rows the batch before left pending, when that batch ran in this process and its users' entities are
    /// live (null after a start, a failure or a rewind: then the rows are read from the table and the users' states
    /// from the store).
    /// </param>
    public BatchExecution(BatchPlan plan, IReadOnlyList<SessionRecord>? previousPending, BadRowsMode badRows, string baseDirectory, IUserStateStore store, IActorRef userSessions, IActorRef sink, TimeSpan timeout, int maxInFlight)
    {
        _plan = plan;
        _shareSize = Math.Max(1, maxInFlight / SharesInFlight);
        _timeout = timeout;
        _userSessions = userSessions;
        _sink = sink;
        _store = store;

        Receive<Loaded>(OnLoaded);
        Receive<Status.Failure>(f => Fail(Failures.Message(f.Cause)));
        Receive<UsersAnswered>(OnAnswered);
        Receive<AllAnswered>(_ => AwaitDurableStates());
        Receive<StatesDurable>(_ => Write());
        Receive<BatchWritten>(OnWritten);
        Receive<BatchWriteFailed>(f => Fail($"batch {plan.Batch}: writing sessions failed: {f.Reason}"));
        Receive<TimedOut>(_ =>
        {
            if (_progress == _progressAtLastCheck)
                Fail($"batch {plan.Batch}: no progress for {timeout} with {_unanswered} user sessions still to answer");
            _progressAtLastCheck = _progress;
        });

        // The timeout measures a stall, not the whole batch: each check passes if anything moved since the last.
        Timers.StartPeriodicTimer(TimedOut.Instance, TimedOut.Instance, timeout);
        LoadAsync(plan, previousPending, badRows, baseDirectory, store, Materializer).PipeTo(Self);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    // Bound to this actor: its streams stop with it when the batch fails or is abandoned.
    private IMaterializer Materializer => _materializer ??= Context.Materializer();

    public static Props Props(BatchPlan plan, IReadOnlyList<SessionRecord>? previousPending, BadRowsMode badRows, string baseDirectory, IUserStateStore store, IActorRef userSessions, IActorRef sink, TimeSpan timeout, int maxInFlight) =>
        Akka.Actor.Props.Create(() => new BatchExecution(plan, previousPending, badRows, baseDirectory, store, userSessions, sink, timeout, maxInFlight));

    /// <param name="States">The users' recovered states; null when their entities are live from the batch before.</param>
    /// <param name="OpenBefore">The users whose sessions the batch before left open.</param>
    private sealed record Loaded(
        Dictionary<long, List<PageVisit>> ByUser,
        Dictionary<long, StoredUserState>? States,
        IReadOnlySet<long> OpenBefore,
        IReadOnlyList<SessionRecord> Closed,
        long Visits,
        List<QuarantinedVisit> Quarantined,
        long? LatestVisitMicros);

    private sealed class AllAnswered
    {
        public static AllAnswered Instance { get; } = new();
    }

    private sealed class StatesDurable
    {
        public static StatesDurable Instance { get; } = new();
    }

    private sealed class TimedOut
    {
        public static TimedOut Instance { get; } = new();
    }

    private static async Task<Loaded> LoadAsync(BatchPlan plan, IReadOnlyList<SessionRecord>? previousPending, BadRowsMode badRows, string baseDirectory, IUserStateStore store, IMaterializer materializer)
    {
        // Bulk recovery: when the entities are not live, the users' states are read while the visits are, one query
        // for the whole batch; so are the previous batch's pending rows.
        var states = previousPending is null
            ? Task.Run(async () => (Dictionary<long, StoredUserState>?)await LoadStatesAsync(plan.Batch, store))
            : Task.FromResult<Dictionary<long, StoredUserState>?>(null);
        Task<IReadOnlyList<SessionRecord>> pendingBefore = previousPending is not null || plan.Batch == 0
            ? Task.FromResult(previousPending ?? [])
            : Task.Run(async () => (IReadOnlyList<SessionRecord>)await SessionTable.Pending(baseDirectory).ReadBatchAsync(plan.Batch - 1));
        var reads = await ReadFilesAsync(plan, badRows, baseDirectory, materializer);
        var visits = new List<Visit>(reads.Sum(r => r.Visits.Count));
        var quarantined = new List<QuarantinedVisit>();
        foreach (var read in reads)
        {
            visits.AddRange(read.Visits);
            quarantined.AddRange(read.Quarantined);
        }

        var byUser = BatchGrouping.ByUser(visits);
        // Sessions pending after the previous batch whose users have no visits in this one close here. Their
        // completed rows are the previous batch's pending rows; their users need no write.
        var previous = (await pendingBefore).ToDictionary(r => r.UserId);
        var closed = BatchGrouping.UsersToClose(previous.Keys, byUser).Select(u => previous[u] with { BatchNumber = plan.Batch }).ToList();
        long? latest = visits.Count == 0 ? null : visits.Max(v => v.VisitTimeMicros);
        return new Loaded(byUser, await states, previous.Keys.ToHashSet(), closed, visits.Count, quarantined, latest);
    }

    /// <summary>The plan's visits files, each read and decoded, in plan order.</summary>
    internal static async Task<IReadOnlyList<VisitsRead>> ReadFilesAsync(BatchPlan plan, BadRowsMode badRows, string baseDirectory, IMaterializer materializer)
    {
        var visitsTable = VisitsTable.In(baseDirectory);
        // Files are decoded side by side and taken in plan order, so the visits keep their commit order. A file that
        // cannot be read is carried through as its failure rather than failing the stage: the batch fails with the
        // file's own message, once, without the stream logging its own error line for it on every attempt.
        var reads = await Source.From(plan.Files)
            .SelectAsync(FilesInFlight, file => Task.Run(async () =>
            {
                try
                {
                    return (Read: await visitsTable.ReadFileAsync(file, badRows, plan.Batch), Failure: (System.Runtime.ExceptionServices.ExceptionDispatchInfo?)null);
                }
                catch (Exception e)
                {
                    return (Read: (VisitsRead?)null, Failure: System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e));
                }
            }))
            .RunWith(Sink.Seq<(VisitsRead? Read, System.Runtime.ExceptionServices.ExceptionDispatchInfo? Failure)>(), materializer);
        reads.FirstOrDefault(r => r.Failure is not null).Failure?.Throw();
        return [.. reads.Select(r => r.Read!)];
    }

    private static async Task<Dictionary<long, StoredUserState>> LoadStatesAsync(long batch, IUserStateStore store)
    {
        try
        {
            return await store.LoadForBatchAsync(batch);
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"reading the user session states for batch {batch} failed: {Failures.Message(e)}", e);
        }
    }

    private void OnLoaded(Loaded loaded)
    {
        _progress++;
        _loaded = loaded;
        _completed.AddRange(loaded.Closed);
        var batch = _plan.Batch;
        var pages = new SharedStrings();
        IEnumerable<IUserSessionMessage> applies = loaded.ByUser.Select(u => new ApplyBatch(u.Key, batch, u.Value, Recovered(u.Key, loaded, pages)));
        // Live entities of closing sessions are told, so they let go of them; with no live entities nobody is.
        IEnumerable<IUserSessionMessage> closes = loaded.States is null ? loaded.Closed.Select(r => new CloseSession(r.UserId, batch)) : [];
        var messages = applies.Concat(closes).ToList();
        if (messages.Count == 0)
        {
            Write();
            return;
        }

        _unanswered = loaded.ByUser.Count;
        var self = Self;
        var region = _userSessions;
        var timeout = _timeout;
        Source.From(messages.Chunk(_shareSize))
            .SelectAsync(SharesInFlight, share => region.Ask<UsersAnswered>(new DeliverToUsers(batch, share), timeout))
            .RunForeach(answered => self.Tell(answered), Materializer)
            .PipeTo(self, success: () => AllAnswered.Instance);
    }

    /// <summary>
    /// A user's state for the batch: from the store's bulk read when entities are not live; otherwise null for a user
    /// whose session is open (its entity holds it) and empty for any other (it has no open session to recover).
    /// </summary>
    private static UserSessionState? Recovered(long userId, Loaded loaded, SharedStrings pages)
    {
        if (loaded.States is null)
            return loaded.OpenBefore.Contains(userId) ? null : UserSessionState.Empty(userId);
        return loaded.States.TryGetValue(userId, out var stored) ? stored.Decode(pages) : UserSessionState.Empty(userId);
    }

    private void OnAnswered(UsersAnswered answered)
    {
        if (answered.Failed.Count > 0)
        {
            var first = answered.Failed[0];
            Fail($"batch {_plan.Batch}: {first.Reason}");
            return;
        }

        foreach (var applied in answered.Applied)
        {
            switch (applied.Outcome)
            {
                case SessionPending p:
                    _pending.Add(SessionRecord.From(p.Session, _plan.Batch));
                    break;
                case SessionCompleted c:
                    _completed.Add(SessionRecord.From(c.Session, _plan.Batch));
                    break;
            }
        }

        _unanswered -= answered.Applied.Count;
        _progress++;
    }

    /// <summary>The users' answers count only once their states are on disk; the output waits for that.</summary>
    private void AwaitDurableStates()
    {
        var batch = _plan.Batch;
        _store.FlushAsync(batch).PipeTo(
            Self,
            success: () => StatesDurable.Instance,
            failure: e => new Status.Failure(new InvalidOperationException(
                Failures.Find<UserStateSaveException>(e) is { } s
                    ? $"batch {batch}: {UserSession.IdFor(s.UserId)}: saving its state failed: {Failures.Innermost(s).Message}"
                    : $"batch {batch}: saving the user session states failed: {Failures.Message(e)}")));
    }

    private void Write()
    {
        // Rows sorted by user so that the same input always writes the same file.
        _pending.Sort((a, b) => a.UserId.CompareTo(b.UserId));
        _completed.Sort((a, b) => a.UserId.CompareTo(b.UserId));
        var loaded = _loaded!;
        _sink.Tell(new WriteBatch(
            _plan.Batch, _completed, _pending, loaded.Quarantined, new BatchProvenance(_plan.Batch, _plan.From, _plan.To, _plan.LastVersion, loaded.Visits) { StartedAtMillis = _startedAt }));
    }

    private void OnWritten(BatchWritten written)
    {
        var loaded = _loaded!;
        Context.Parent.Tell(new BatchExecuted(
            _plan,
            loaded.Visits,
            loaded.ByUser.Count + loaded.Closed.Count,
            _pending.Count,
            _completed.Count,
            loaded.Quarantined.Count,
            _pending,
            _clock.Elapsed,
            loaded.LatestVisitMicros));
        Context.Stop(Self);
    }

    private void Fail(string reason)
    {
        Context.Parent.Tell(new BatchExecutionFailed(_plan.Batch, reason));
        Context.Stop(Self);
    }
}

/// <summary>Sent by a <see cref="BatchExecution"/> to the coordinator when the batch's output is durable.</summary>
/// <remarks>In event-time mode <paramref name="PendingRows"/> is null (nothing is carried to the next batch), <paramref name="Pending"/> counts every open session, and the watermark after the batch, the rows it corrected and its late visits are reported too.</remarks>
public sealed record BatchExecuted(
    BatchPlan Plan,
    long Visits,
    long ActiveUsers,
    long Pending,
    long Completed,
    long Quarantined,
    IReadOnlyList<SessionRecord>? PendingRows,
    TimeSpan Elapsed,
    long? LatestVisitMicros = null,
    long? WatermarkMicros = null,
    long Corrected = 0,
    long Late = 0)
{
    /// <summary>Event-time mode: the users the batch stepped, with their states after it (kept for the next batch once this one commits).</summary>
    public StateRows? EventTimeStates { get; init; }

    /// <summary>Event-time mode: every stored user's deadline after the batch, when the batch had them before it.</summary>
    public DeadlineIndex? EventTimeDeadlines { get; init; }
}

public sealed record BatchExecutionFailed(long Batch, string Reason);

/// <summary>
/// Sent by an <see cref="EventTimeBatchExecution"/> to the coordinator once its users are stepped, while its states
/// and tables are still being written: the watermark after the batch is known, so the next batch's visits can be read ahead.
/// </summary>
public sealed record EventTimeBatchStepped(BatchPlan Plan, long WatermarkAfter);

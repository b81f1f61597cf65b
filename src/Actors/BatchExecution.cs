using System.Diagnostics;
using Akka.Actor;
using Sessionization.Actors.Serialization;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.SinkProtocol;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Actors;

/// <summary>
/// Carries one planned batch through: reads its visits and, in one query, the states of the users they
/// may touch, sends each user with visits its one <see cref="ApplyBatch"/>, closes the previous batch's
/// pending sessions that got none, gathers the outcomes, waits until the users' states are durable, hands
/// the outcomes to the sink and reports back to the coordinator. It holds no durable state: a batch it did
/// not finish is run again from its plan.
/// </summary>
public sealed class BatchExecution : ReceiveActor, IWithTimers
{
    private readonly BatchPlan _plan;
    private readonly IActorRef _userSessions;
    private readonly IActorRef _sink;
    private readonly IUserStateStore _store;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<SessionRow> _pending = [];
    private readonly List<SessionRow> _completed = [];
    private readonly HashSet<long> _answered = [];
    private readonly int _maxInFlight;
    private Loaded? _loaded;
    private long _progress;
    private long _progressAtLastCheck;
    private DispatchWindow? _window;

    public BatchExecution(BatchPlan plan, IReadOnlyList<SessionRow>? previousPending, BadRowsMode badRows, string baseDirectory, IUserStateStore store, IActorRef userSessions, IActorRef sink, TimeSpan timeout, int maxInFlight)
    {
        _plan = plan;
        _maxInFlight = maxInFlight;
        _userSessions = userSessions;
        _sink = sink;
        _store = store;

        Receive<Loaded>(OnLoaded);
        Receive<Status.Failure>(f => Fail(Failures.Message(f.Cause)));
        Receive<BatchApplied>(OnApplied);
        Receive<BatchApplyFailed>(f =>
        {
            // A user that already answered may still stop later; only a missing answer fails the batch.
            if (f.Batch == plan.Batch && !_answered.Contains(f.UserId))
                Fail($"batch {plan.Batch}: {f.Reason}");
        });
        Receive<StatesDurable>(_ => Write());
        Receive<BatchWritten>(OnWritten);
        Receive<BatchWriteFailed>(f => Fail($"batch {plan.Batch}: writing sessions failed: {f.Reason}"));
        Receive<TimedOut>(_ =>
        {
            if (_progress == _progressAtLastCheck)
                Fail($"batch {plan.Batch}: no progress for {timeout} with {_window?.Unanswered ?? 0} user sessions still to answer");
            _progressAtLastCheck = _progress;
        });

        // The timeout measures a stall, not the whole batch: each check passes if anything moved since the last.
        Timers.StartPeriodicTimer(TimedOut.Instance, TimedOut.Instance, timeout);
        LoadAsync(plan, previousPending, badRows, baseDirectory, store).PipeTo(Self);
    }

    public ITimerScheduler Timers { get; set; } = null!;

    public static Props Props(BatchPlan plan, IReadOnlyList<SessionRow>? previousPending, BadRowsMode badRows, string baseDirectory, IUserStateStore store, IActorRef userSessions, IActorRef sink, TimeSpan timeout, int maxInFlight) =>
        Akka.Actor.Props.Create(() => new BatchExecution(plan, previousPending, badRows, baseDirectory, store, userSessions, sink, timeout, maxInFlight));

    private sealed record Loaded(
        Dictionary<long, List<PageVisit>> ByUser, Dictionary<long, StoredUserState> States, IReadOnlyList<SessionRow> Closed, long Visits, List<QuarantinedRow> Quarantined);

    private sealed class StatesDurable
    {
        public static StatesDurable Instance { get; } = new();
    }

    private sealed class TimedOut
    {
        public static TimedOut Instance { get; } = new();
    }

    private static async Task<Loaded> LoadAsync(BatchPlan plan, IReadOnlyList<SessionRow>? previousPending, BadRowsMode badRows, string baseDirectory, IUserStateStore store)
    {
        // Bulk recovery: the users' states are read while the visits are, one query for the whole batch; so are
        // the previous batch's pending rows when they are not in memory (after a restart).
        var states = Task.Run(() => LoadStatesAsync(plan.Batch, store));
        Task<IReadOnlyList<SessionRow>> pendingBefore = previousPending is not null || plan.Batch == 0
            ? Task.FromResult(previousPending ?? [])
            : Task.Run(async () => (IReadOnlyList<SessionRow>)await SessionTable.Pending(baseDirectory).ReadBatchAsync(plan.Batch - 1));
        var visitsTable = VisitsTable.In(baseDirectory);
        var visits = new List<Visit>();
        var quarantined = new List<QuarantinedRow>();
        foreach (var file in plan.Files)
        {
            var read = await visitsTable.ReadFileAsync(file, badRows, plan.Batch);
            visits.AddRange(read.Visits);
            quarantined.AddRange(read.Quarantined);
        }

        var byUser = BatchGrouping.ByUser(visits);
        // Sessions pending after the previous batch whose users have no visits in this one close here. Their
        // completed rows are the previous batch's pending rows; their users need no message and no write.
        var previous = (await pendingBefore).ToDictionary(r => r.UserId);
        var closed = BatchGrouping.UsersToClose(previous.Keys, byUser).Select(u => previous[u] with { BatchNumber = plan.Batch }).ToList();
        return new Loaded(byUser, await states, closed, visits.Count, quarantined);
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
        if (loaded.ByUser.Count == 0)
        {
            Write();
            return;
        }

        var pages = new SharedStrings();
        var messages = loaded.ByUser.Select(u => (object)new ApplyBatch(u.Key, _plan.Batch, u.Value, Recovered(u.Key, loaded.States, pages)));
        var self = Self;
        _window = new DispatchWindow(messages, _maxInFlight, m => _userSessions.Tell(m, self));
        _window.Fill();
    }

    private static UserSessionState Recovered(long userId, Dictionary<long, StoredUserState> states, SharedStrings pages) =>
        states.TryGetValue(userId, out var stored) ? UserStateCodec.Decode(stored.State.Span, pages) : UserSessionState.Empty(userId);

    private void OnApplied(BatchApplied applied)
    {
        if (applied.Batch != _plan.Batch || !_answered.Add(applied.UserId))
            return;
        switch (applied.Outcome)
        {
            case SessionPending p:
                _pending.Add(SessionRow.From(p.Session, _plan.Batch));
                break;
            case SessionCompleted c:
                _completed.Add(SessionRow.From(c.Session, _plan.Batch));
                break;
        }

        _progress++;
        if (_window!.Answered())
            AwaitDurableStates();
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
            _plan.Batch, _completed, _pending, loaded.Quarantined, new BatchProvenance(_plan.Batch, _plan.From, _plan.To, _plan.LastVersion, loaded.Visits)));
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
            _clock.Elapsed));
        Context.Stop(Self);
    }

    private void Fail(string reason)
    {
        Context.Parent.Tell(new BatchExecutionFailed(_plan.Batch, reason));
        Context.Stop(Self);
    }
}

/// <summary>Sent by a <see cref="BatchExecution"/> to the coordinator when the batch's output is durable.</summary>
public sealed record BatchExecuted(BatchPlan Plan, long Visits, long ActiveUsers, long Pending, long Completed, long Quarantined, IReadOnlyList<SessionRow> PendingRows, TimeSpan Elapsed);

public sealed record BatchExecutionFailed(long Batch, string Reason);

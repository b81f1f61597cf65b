using Sessionization.Domain;
using Sessionization.Persistence.UserState;

namespace Sessionization.Actors;

/// <summary>
/// What one event-time batch does to the tables: rows to write, rows it takes out, sessions it opened or changed, late
/// visits. <see cref="OpenOfChangedUsers"/> are every open session of each user whose sessions the batch changed (the
/// batch's <c>pending_sessions</c> rows); <see cref="OpenDelta"/> is how many more sessions are open after the batch than before it.
/// </summary>
public sealed record EventTimeBatchResult(
    IReadOnlyList<SessionRecord> Written,
    IReadOnlyList<SessionRecord> Removed,
    IReadOnlyList<SessionRecord> OpenedOrChanged,
    IReadOnlyList<Visit> Late,
    IReadOnlyList<SessionRecord> OpenOfChangedUsers,
    long OpenDelta,
    int UsersStepped)
{
    /// <summary>Every user the batch stepped, with its state after the batch (no sessions: it keeps nothing).</summary>
    public IReadOnlyDictionary<long, EventTimeUserState> States { get; init; } = new Dictionary<long, EventTimeUserState>();
}

/// <summary>
/// The state side of an event-time batch: it reads the users the batch touches (those with visits, by id, and those
/// whose deadline the batch's watermark reached), steps each through the policy and saves their new states, all
/// before any table is written. The batch always starts from the store as it stood before the batch: a replay after a
/// crash first takes back what the crashed attempt saved, so it computes the same rows again.
/// </summary>
public static class EventTimeBatchWork
{
    /// <param name="known">
    /// The users the batch before stepped, with their states after it, when that batch ran in this process (null
    /// otherwise): they are taken from here instead of the store, which holds the same. Everyone else is read.
    /// </param>
    public static async Task<EventTimeBatchResult> RunAsync(
        EventTimeStateStore store,
        EventTimeSessionPolicy policy,
        long batch,
        IReadOnlyList<Visit> visitsInCommitOrder,
        long watermarkBefore,
        long watermarkAfter,
        bool endOfInput = false,
        IReadOnlyDictionary<long, EventTimeUserState>? known = null,
        CancellationToken cancellationToken = default)
    {
        await store.RewindAsync(batch, cancellationToken);
        var byUser = BatchGrouping.ByUser(visitsInCommitOrder);
        var states = await LoadAsync(store, byUser.Keys, endOfInput ? Watermark.EndOfInput : watermarkAfter, known, cancellationToken);

        var rows = new List<EventTimeStateRow>();
        var written = new List<SessionRecord>();
        var removed = new List<SessionRecord>();
        var opened = new List<SessionRecord>();
        var late = new List<Visit>();
        var openOfChanged = new List<SessionRecord>();
        long openDelta = 0;
        var after = new Dictionary<long, EventTimeUserState>(states.Count + byUser.Count);
        foreach (var user in byUser.Keys.Union(states.Keys).Order())
        {
            // A user without a stored state has no row to supersede: its save is one insert.
            var hadRow = states.TryGetValue(user, out var stored);
            var state = stored ?? EventTimeUserState.Empty(user);
            var step = policy.Step(state, batch, byUser.GetValueOrDefault(user) ?? [], watermarkBefore, watermarkAfter, endOfInput)
                ?? throw new InvalidOperationException($"user {user}: its stored state already has batch {batch} after the store was taken back before it");
            rows.Add(EventTimeStateRow.From(step.State, policy) with { Supersedes = hadRow });
            after[user] = step.State;
            written.AddRange(step.Written);
            removed.AddRange(step.Removed);
            opened.AddRange(step.OpenedOrChanged);
            late.AddRange(step.Late.Select(v => new Visit(user, v.TimeMicros, v.Page)));
            var openAfter = step.State.Sessions.Where(session => session.WrittenIn is null).ToList();
            openDelta += openAfter.Count - state.Sessions.Count(session => session.WrittenIn is null);
            // A user whose sessions changed gets all its open ones again: a reader takes each user's open sessions
            // from the last batch that wrote any row of that user, so none it still has may be missing there.
            if (step.ChangesSessions)
                openOfChanged.AddRange(openAfter.Select(session => session.ToRecord(user, batch)));
        }

        await store.SaveBatchAsync(batch, rows, cancellationToken);
        return new EventTimeBatchResult(written, removed, opened, late, openOfChanged, openDelta, rows.Count) { States = after };
    }

    /// <summary>
    /// The stored states (those the store has a current row for) of the users with visits and of the users due at <paramref name="dueAt"/> (at the end of input every
    /// user with an open session is due: all of them close): from <paramref name="known"/> where it has them, the rest
    /// from the store by id.
    /// </summary>
    private static async Task<Dictionary<long, EventTimeUserState>> LoadAsync(
        EventTimeStateStore store, IEnumerable<long> withVisits, long dueAt, IReadOnlyDictionary<long, EventTimeUserState>? known, CancellationToken cancellationToken)
    {
        var pages = new SharedStrings();
        if (known is null)
        {
            var loaded = await store.LoadUsersAsync(withVisits.ToList(), pages, cancellationToken);
            foreach (var (user, state) in await store.LoadDueAsync(dueAt, pages, cancellationToken))
                loaded.TryAdd(user, state);
            return loaded;
        }

        var states = new Dictionary<long, EventTimeUserState>();
        var missing = new List<long>();
        foreach (var user in withVisits.Concat(await store.LoadDueIdsAsync(dueAt, cancellationToken)))
        {
            if (states.ContainsKey(user))
                continue;
            // A user the batch before left keeping nothing has no stored state, as if it had never been seen.
            if (known.TryGetValue(user, out var state))
            {
                if (!state.Sessions.IsEmpty)
                    states[user] = state;
            }
            else
            {
                missing.Add(user);
            }
        }

        foreach (var (user, state) in await store.LoadUsersAsync(missing.Distinct().ToList(), pages, cancellationToken))
            states[user] = state;
        return states;
    }
}

using System.Threading.Channels;
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
    /// <summary>
    /// Every user the batch stepped, with its state after the batch as saved (it keeps nothing: no row). Kept encoded:
    /// held between batches, a few hundred thousand decoded states would be millions of objects for every full
    /// garbage collection to trace.
    /// </summary>
    public StateRows States { get; init; } = StateRows.Empty;

    /// <summary>Every user with a stored row after the batch, and its deadline, when the batch had them before it (else null).</summary>
    public DeadlineIndex? Deadlines { get; init; }

    /// <summary>Completes when the states are durable (see <see cref="EventTimeBatchWork.RunAsync"/>'s <c>waitForSave</c>).</summary>
    public Task Saved { get; init; } = Task.CompletedTask;
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
    /// <param name="deadlines">
    /// Every user with a stored row and its deadline, as the batch before left them, when that batch ran in this process
    /// with <paramref name="known"/>. Null with <paramref name="known"/>: the batch reads them from the store, once for
    /// the process, and the result carries them on.
    /// </param>
    /// <param name="waitForSave">
    /// False: return once every user is stepped, with the save's tail still running as <see cref="EventTimeBatchResult.Saved"/>,
    /// so the tables' files can be written meanwhile; nothing may be committed before it completes.
    /// </param>
    public static async Task<EventTimeBatchResult> RunAsync(
        EventTimeStateStore store,
        EventTimeSessionPolicy policy,
        long batch,
        VisitsByUser byUser,
        long watermarkBefore,
        long watermarkAfter,
        bool endOfInput = false,
        StateRows? known = null,
        DeadlineIndex? deadlines = null,
        bool waitForSave = true,
        CancellationToken cancellationToken = default)
    {
        await store.RewindAsync(batch, cancellationToken);
        var dueAt = endOfInput ? Watermark.EndOfInput : watermarkAfter;
        // A process's first batch asks the store for each user it needs; from its second on, the process knows which
        // users have a row at all, and their deadlines.
        deadlines = known is null ? null : deadlines ?? await store.LoadDeadlinesAsync(cancellationToken);
        var states = known is not null && deadlines is not null
            ? await LoadIndexedAsync(store, byUser, dueAt, known, deadlines, cancellationToken)
            : await LoadAsync(store, byUser, dueAt, known, cancellationToken);

        var pages = new SharedStrings();
        var slab = new StateSlab();
        // The store's one writer saves the states while the users are still being stepped: the save (a log record, or a
        // statement per user for a batch too large for the log) is on one thread, the stepping is work for the other
        // core. The queue holds no more than after does.
        var changes = Channel.CreateUnbounded<EventTimeStateChange>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        // What the batch's states will take, about: the states it read, and a little for each user with visits.
        var expectedBytes = (long)byUser.Count * 64;
        for (var i = 0; i < states.Count; i++)
            expectedBytes += states[i].State.Length;
        var saving = Task.Run(() => store.SaveBatchAsync(batch, changes.Reader.ReadAllAsync(cancellationToken), expectedBytes, dueAt, cancellationToken), cancellationToken);
        var written = new List<SessionRecord>();
        var removed = new List<SessionRecord>();
        var opened = new List<SessionRecord>();
        var late = new List<Visit>();
        var openOfChanged = new List<SessionRecord>();
        long openDelta = 0;
        var users = UsersInOrder(byUser, states);
        var after = new EventTimeStateRow[users.Length];
        try
        {
            for (var u = 0; u < users.Length; u++)
            {
                var (user, rank, read) = users[u];
                EventTimeStateRow? stored = read >= 0 ? states[read] : null;
                var state = stored?.Decode(pages) ?? EventTimeUserState.Empty(user);
                var step = policy.Step(state, batch, rank >= 0 ? byUser.At(rank) : default, watermarkBefore, watermarkAfter, endOfInput)
                    ?? throw new InvalidOperationException($"user {user}: its stored state already has batch {batch} after the store was taken back before it");
                var row = EventTimeStateRow.From(step.State, policy, slab);
                changes.Writer.TryWrite(new EventTimeStateChange(row, stored));
                after[u] = row;
                written.AddRange(step.Written);
                removed.AddRange(step.Removed);
                opened.AddRange(step.OpenedOrChanged);
                foreach (var visit in step.Late)
                    late.Add(new Visit(user, visit.TimeMicros, visit.Page));
                openDelta += OpenCount(step.State) - OpenCount(state);
                // A user whose sessions changed gets all its open ones again: a reader takes each user's open sessions
                // from the last batch that wrote any row of that user, so none it still has may be missing there.
                if (step.ChangesSessions)
                    AddOpenRecords(step, user, batch, openOfChanged);
            }
        }
        catch (Exception e)
        {
            // The save sees the failure and rolls back: nothing of a batch that was not stepped whole is kept.
            changes.Writer.Complete(e);
            await saving.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            throw;
        }

        changes.Writer.Complete();

        if (waitForSave)
            await saving;
        var leaves = new StateRows(after, after.Length);
        return new EventTimeBatchResult(written, removed, opened, late, openOfChanged, openDelta, after.Length)
        {
            States = leaves,
            Deadlines = deadlines?.After(leaves),
            Saved = saving,
        };
    }

    /// <summary>
    /// The users with visits and those with a stored row, each once, in id order, each with its place among the users
    /// with visits and among the rows (-1: none): both in order, merged, so neither side is looked up in the other.
    /// </summary>
    private static (long User, int Rank, int Read)[] UsersInOrder(VisitsByUser byUser, StateRows read)
    {
        var withVisits = byUser.Users;
        var users = new (long User, int Rank, int Read)[withVisits.Count + read.Count];
        int count = 0, v = 0, r = 0;
        while (v < withVisits.Count || r < read.Count)
        {
            if (r == read.Count || (v < withVisits.Count && withVisits[v] <= read[r].UserId))
            {
                var stored = r < read.Count && read[r].UserId == withVisits[v] ? r++ : -1;
                users[count++] = (withVisits[v], v, stored);
                v++;
            }
            else
            {
                users[count++] = (read[r].UserId, -1, r);
                r++;
            }
        }

        Array.Resize(ref users, count);
        return users;
    }

    private static int OpenCount(EventTimeUserState state)
    {
        var open = 0;
        foreach (var session in state.Sessions)
            open += session.WrittenIn is null ? 1 : 0;
        return open;
    }

    /// <summary>
    /// The rows of every open session of a user after <paramref name="step"/>: the ones the step opened or changed it
    /// made already (both lists are in start order), the rest are made here.
    /// </summary>
    private static void AddOpenRecords(EventTimeStep step, long user, long batch, List<SessionRecord> records)
    {
        var made = 0;
        foreach (var session in step.State.Sessions)
        {
            if (session.WrittenIn is not null)
                continue;
            if (made < step.OpenedOrChanged.Count && step.OpenedOrChanged[made].StartTimeMicros == session.StartMicros)
                records.Add(step.OpenedOrChanged[made++]);
            else
                records.Add(session.ToRecord(user, batch));
        }
    }

    /// <summary>
    /// The stored rows of the users with visits and of the users due at <paramref name="dueAt"/>, found in
    /// <paramref name="deadlines"/>, which lists every user with a row: walked beside the users with visits, with the
    /// rows taken from <paramref name="known"/> where it has them and the rest read from the store by id. A user with
    /// visits that has no entry has no row, and is not looked up.
    /// </summary>
    private static async Task<StateRows> LoadIndexedAsync(
        EventTimeStateStore store, VisitsByUser byUser, long dueAt, StateRows known, DeadlineIndex deadlines, CancellationToken cancellationToken)
    {
        var withVisits = byUser.Users;
        var rows = new List<EventTimeStateRow>();
        var read = new List<long>();
        int v = 0, k = 0;
        for (var i = 0; i < deadlines.Count; i++)
        {
            var user = deadlines.UserAt(i);
            while (v < withVisits.Count && withVisits[v] < user)
                v++;
            if (deadlines.DeadlineAt(i) > dueAt && (v == withVisits.Count || withVisits[v] != user))
                continue;
            while (k < known.Count && known[k].UserId < user)
                k++;
            if (k < known.Count && known[k].UserId == user && !known[k].KeepsNothing)
                rows.Add(known[k]);
            else
                read.Add(user);
        }

        if (read.Count == 0)
            return new StateRows([.. rows], rows.Count);
        var stored = await store.LoadUsersAsync(read, cancellationToken);
        foreach (var user in read)
        {
            // The index came from the store and follows every batch this process saved: a row it lists is there.
            if (!stored.TryGetValue(user, out var row))
                throw new InvalidOperationException($"user {user}: the event-time store has no row for a user this process last saw with one");
            rows.Add(row);
        }

        return StateRows.Of(rows);
    }

    /// <summary>
    /// The stored rows of the users with visits and of the users due at <paramref name="dueAt"/> (at the end of input
    /// every user with an open session is due: all of them close): from <paramref name="known"/> where it has them, the
    /// rest from the store by id. A user without a row has kept nothing.
    /// </summary>
    private static async Task<StateRows> LoadAsync(
        EventTimeStateStore store, VisitsByUser byUser, long dueAt, StateRows? known, CancellationToken cancellationToken)
    {
        if (known is null)
        {
            var loaded = await store.LoadUsersAsync(byUser.Users, cancellationToken);
            foreach (var (user, row) in await store.LoadDueAsync(dueAt, cancellationToken))
                loaded.TryAdd(user, row);
            return StateRows.Of([.. loaded.Values]);
        }

        var rows = new List<EventTimeStateRow>(known.Count);
        var missing = new List<long>();
        // Both in id order: the known rows are walked alongside the users with visits.
        var k = 0;
        foreach (var user in byUser.Users)
        {
            while (k < known.Count && known[k].UserId < user)
                k++;
            // A user the batch before left keeping nothing has no row, as if it had never been seen.
            if (k == known.Count || known[k].UserId != user)
                missing.Add(user);
            else if (!known[k].KeepsNothing)
                rows.Add(known[k]);
        }

        // The store names the due users with perhaps some whose deadline moved on since (and perhaps twice): their rows
        // tell them apart. A user that keeps nothing has no deadline, and is never due.
        foreach (var user in await store.LoadDueIdsAsync(dueAt, cancellationToken))
        {
            if (byUser.Contains(user))
                continue;
            if (!known.TryGetValue(user, out var row))
                missing.Add(user);
            else if (row.Deadline <= dueAt)
                rows.Add(row);
        }

        foreach (var (user, row) in await store.LoadUsersAsync(missing.Distinct().ToList(), cancellationToken))
        {
            if (byUser.Contains(user) || row.Deadline <= dueAt)
                rows.Add(row);
        }

        return StateRows.Of(rows);
    }
}

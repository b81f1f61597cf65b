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
    int UsersStepped);

/// <summary>
/// The state side of an event-time batch: it reads the users the batch touches (those with visits, by id, and those
/// whose deadline the batch's watermark reached), steps each through the policy and saves their new states, all
/// before any table is written. The batch always starts from the store as it stood before the batch: a replay after a
/// crash first takes back what the crashed attempt saved, so it computes the same rows again.
/// </summary>
public static class EventTimeBatchWork
{
    public static async Task<EventTimeBatchResult> RunAsync(
        EventTimeStateStore store,
        EventTimeSessionPolicy policy,
        long batch,
        IReadOnlyList<Visit> visitsInCommitOrder,
        long watermarkBefore,
        long watermarkAfter,
        bool endOfInput = false,
        CancellationToken cancellationToken = default)
    {
        await store.RewindAsync(batch, cancellationToken);
        var byUser = BatchGrouping.ByUser(visitsInCommitOrder);
        var pages = new SharedStrings();
        var states = await store.LoadUsersAsync(byUser.Keys.ToList(), pages, cancellationToken);
        // At the end of input every user with an open session is due: all of them close.
        foreach (var (user, state) in await store.LoadDueAsync(endOfInput ? Watermark.EndOfInput : watermarkAfter, pages, cancellationToken))
            states.TryAdd(user, state);

        var rows = new List<EventTimeStateRow>();
        var written = new List<SessionRecord>();
        var removed = new List<SessionRecord>();
        var opened = new List<SessionRecord>();
        var late = new List<Visit>();
        var openOfChanged = new List<SessionRecord>();
        long openDelta = 0;
        foreach (var user in byUser.Keys.Union(states.Keys).Order())
        {
            var state = states.GetValueOrDefault(user) ?? EventTimeUserState.Empty(user);
            var step = policy.Step(state, batch, byUser.GetValueOrDefault(user) ?? [], watermarkBefore, watermarkAfter, endOfInput)
                ?? throw new InvalidOperationException($"user {user}: its stored state already has batch {batch} after the store was taken back before it");
            rows.Add(EventTimeStateRow.From(step.State, policy));
            written.AddRange(step.Written);
            removed.AddRange(step.Removed);
            opened.AddRange(step.OpenedOrChanged);
            late.AddRange(step.Late.Select(v => new Visit(user, v.TimeMicros, v.Page)));
            var openAfter = step.State.Sessions.Where(session => session.WrittenIn is null).ToList();
            openDelta += openAfter.Count - state.Sessions.Count(session => session.WrittenIn is null);
            // A user whose sessions changed gets all its open ones again: a reader takes each user's open sessions
            // from the last batch that wrote any row of that user, so none it still has may be missing there.
            if (step.Written.Count > 0 || step.Removed.Count > 0 || step.OpenedOrChanged.Count > 0)
                openOfChanged.AddRange(openAfter.Select(session => session.ToRecord(user, batch)));
        }

        await store.SaveBatchAsync(batch, rows, cancellationToken);
        return new EventTimeBatchResult(written, removed, opened, late, openOfChanged, openDelta, rows.Count);
    }
}

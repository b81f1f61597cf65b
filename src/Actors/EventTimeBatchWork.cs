using Sessionization.Domain;
using Sessionization.Persistence.UserState;

namespace Sessionization.Actors;

/// <summary>What one event-time batch does to the tables: rows to write, rows it takes out, sessions it opened or changed, late visits.</summary>
public sealed record EventTimeBatchResult(
    IReadOnlyList<SessionRecord> Written,
    IReadOnlyList<SessionRecord> Removed,
    IReadOnlyList<SessionRecord> OpenedOrChanged,
    IReadOnlyList<Visit> Late);

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
        CancellationToken cancellationToken = default)
    {
        await store.RewindAsync(batch, cancellationToken);
        var byUser = BatchGrouping.ByUser(visitsInCommitOrder);
        var pages = new SharedStrings();
        var states = await store.LoadUsersAsync(byUser.Keys.ToList(), pages, cancellationToken);
        foreach (var (user, state) in await store.LoadDueAsync(watermarkAfter, pages, cancellationToken))
            states.TryAdd(user, state);

        var rows = new List<EventTimeStateRow>();
        var written = new List<SessionRecord>();
        var removed = new List<SessionRecord>();
        var opened = new List<SessionRecord>();
        var late = new List<Visit>();
        foreach (var user in byUser.Keys.Union(states.Keys).Order())
        {
            var state = states.GetValueOrDefault(user) ?? EventTimeUserState.Empty(user);
            var step = policy.Step(state, batch, byUser.GetValueOrDefault(user) ?? [], watermarkBefore, watermarkAfter)
                ?? throw new InvalidOperationException($"user {user}: its stored state already has batch {batch} after the store was taken back before it");
            rows.Add(EventTimeStateRow.From(step.State, policy));
            written.AddRange(step.Written);
            removed.AddRange(step.Removed);
            opened.AddRange(step.OpenedOrChanged);
            late.AddRange(step.Late.Select(v => new Visit(user, v.TimeMicros, v.Page)));
        }

        await store.SaveBatchAsync(batch, rows, cancellationToken);
        return new EventTimeBatchResult(written, removed, opened, late);
    }
}

using System.Runtime.InteropServices;

namespace Sessionization.Domain;

/// <summary>
/// A batch's visits by user, each user's in visit-time order (equal times in the order they came), in one array per
/// user sized exactly: counted first, then filled. Grown list by list, the visits of a batch of a million cost about six
/// times their size in arrays thrown away, and a list object per user besides, all for the collector to copy.
/// </summary>
public sealed class VisitsByUser
{
    private readonly Dictionary<long, Slot> _byUser;

    private VisitsByUser(Dictionary<long, Slot> byUser) => _byUser = byUser;

    /// <summary>How many users have visits.</summary>
    public int Count => _byUser.Count;

    /// <summary>The users with visits, in no particular order.</summary>
    public IReadOnlyCollection<long> Users => _byUser.Keys;

    public bool Contains(long user) => _byUser.ContainsKey(user);

    /// <summary>The user's visits in time order; none for a user without any.</summary>
    public ReadOnlySpan<PageVisit> Of(long user) => _byUser.TryGetValue(user, out var slot) ? slot.Visits : default;

    /// <summary>The visits of <paramref name="parts"/> (in read order: part by part) that <paramref name="keep"/> keeps.</summary>
    public static VisitsByUser From(IReadOnlyList<IReadOnlyList<Visit>> parts, Func<Visit, bool>? keep = null)
    {
        var byUser = new Dictionary<long, Slot>();
        foreach (var part in parts)
        {
            for (var i = 0; i < part.Count; i++)
            {
                if (keep is null || keep(part[i]))
                    CollectionsMarshal.GetValueRefOrAddDefault(byUser, part[i].UserId, out _).Filled++;
            }
        }

        foreach (var user in byUser.Keys)
        {
            ref var slot = ref CollectionsMarshal.GetValueRefOrNullRef(byUser, user);
            (slot.Visits, slot.Filled) = (new PageVisit[slot.Filled], 0);
        }

        foreach (var part in parts)
        {
            for (var i = 0; i < part.Count; i++)
            {
                var visit = part[i];
                if (keep is not null && !keep(visit))
                    continue;
                ref var slot = ref CollectionsMarshal.GetValueRefOrNullRef(byUser, visit.UserId);
                slot.Visits[slot.Filled++] = new PageVisit(visit.VisitTimeMicros, visit.Page);
            }
        }

        foreach (var slot in byUser.Values)
            BatchGrouping.SortStable(slot.Visits);
        return new VisitsByUser(byUser);
    }

    /// <summary>A user's visits; while they are being placed, how many are (counted first, then filled).</summary>
    private struct Slot
    {
        public PageVisit[] Visits;
        public int Filled;
    }
}

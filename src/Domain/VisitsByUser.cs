using System.Runtime.InteropServices;

namespace Sessionization.Domain;

/// <summary>
/// A batch's visits by user, each user's in visit-time order (equal times in the order they came), all in one array
/// where each user has a range of its own: counted first, then placed. Grown list by list, the visits of a batch of a
/// million cost about six times their size in arrays thrown away; an array per user, a few hundred thousand objects
/// that live through the batch, for every full collection meanwhile to mark.
/// </summary>
public sealed class VisitsByUser
{
    private readonly Dictionary<long, Slot> _byUser;
    private readonly PageVisit[] _visits;

    private VisitsByUser(Dictionary<long, Slot> byUser, PageVisit[] visits) => (_byUser, _visits) = (byUser, visits);

    /// <summary>How many users have visits.</summary>
    public int Count => _byUser.Count;

    /// <summary>The users with visits, in no particular order.</summary>
    public IReadOnlyCollection<long> Users => _byUser.Keys;

    public bool Contains(long user) => _byUser.ContainsKey(user);

    /// <summary>The user's visits in time order; none for a user without any.</summary>
    public ReadOnlySpan<PageVisit> Of(long user) => _byUser.TryGetValue(user, out var slot) ? _visits.AsSpan(slot.Start, slot.Count) : default;

    /// <summary>The visits of <paramref name="parts"/> (in read order: part by part) that <paramref name="keep"/> keeps.</summary>
    public static VisitsByUser From(IReadOnlyList<IReadOnlyList<Visit>> parts, Func<Visit, bool>? keep = null)
    {
        var byUser = new Dictionary<long, Slot>();
        foreach (var part in parts)
        {
            for (var i = 0; i < part.Count; i++)
            {
                if (keep is null || keep(part[i]))
                    CollectionsMarshal.GetValueRefOrAddDefault(byUser, part[i].UserId, out _).Count++;
            }
        }

        var start = 0;
        foreach (var user in byUser.Keys)
        {
            ref var slot = ref CollectionsMarshal.GetValueRefOrNullRef(byUser, user);
            (slot.Start, slot.Filled) = (start, start);
            start += slot.Count;
        }

        // Past the last user's range: the visits kept, in all.
        var visits = new PageVisit[start];
        foreach (var part in parts)
        {
            for (var i = 0; i < part.Count; i++)
            {
                var visit = part[i];
                if (keep is not null && !keep(visit))
                    continue;
                ref var slot = ref CollectionsMarshal.GetValueRefOrNullRef(byUser, visit.UserId);
                visits[slot.Filled++] = new PageVisit(visit.VisitTimeMicros, visit.Page);
            }
        }

        foreach (var slot in byUser.Values)
            BatchGrouping.SortStable(visits.AsSpan(slot.Start, slot.Count));
        return new VisitsByUser(byUser, visits);
    }

    /// <summary>A user's range of the visits; while they are being placed, where the next one goes.</summary>
    private struct Slot
    {
        public int Start;
        public int Count;
        public int Filled;
    }
}

using System.Runtime.InteropServices;

namespace Sessionization.Domain;

/// <summary>
/// A batch's visits by user, each user's in visit-time order (equal times in the order they came), all in one array
/// where each user has a range of its own, the users in id order: numbered as they come, counted, then placed. Grown
/// list by list, the visits of a batch of a million cost about six times their size in arrays thrown away; an array
/// per user, a few hundred thousand objects that live through the batch, for every full collection meanwhile to mark.
/// </summary>
public sealed class VisitsByUser
{
    /// <summary>The users with visits by id, for <see cref="Contains"/> (the numbers they were given are needed only while grouping).</summary>
    private readonly Dictionary<long, int> _numbers;
    private readonly long[] _users;
    private readonly int[] _starts;
    private readonly PageVisit[] _visits;

    private VisitsByUser(Dictionary<long, int> numbers, long[] users, int[] starts, PageVisit[] visits) =>
        (_numbers, _users, _starts, _visits) = (numbers, users, starts, visits);

    /// <summary>How many users have visits.</summary>
    public int Count => _users.Length;

    /// <summary>The users with visits, in id order.</summary>
    public IReadOnlyList<long> Users => _users;

    public bool Contains(long user) => _numbers.ContainsKey(user);

    /// <summary>The user's visits in time order; none for a user without any.</summary>
    public ReadOnlySpan<PageVisit> Of(long user) => Array.BinarySearch(_users, user) is var rank and >= 0 ? At(rank) : default;

    /// <summary>The visits of the user at <paramref name="rank"/> in <see cref="Users"/>: no lookup by id.</summary>
    public ReadOnlySpan<PageVisit> At(int rank) => _visits.AsSpan(_starts[rank], _starts[rank + 1] - _starts[rank]);

    /// <summary>The visits of <paramref name="parts"/> (in read order: part by part) that <paramref name="keep"/> keeps.</summary>
    public static VisitsByUser From(IReadOnlyList<IReadOnlyList<Visit>> parts, Func<Visit, bool>? keep = null)
    {
        var total = 0;
        foreach (var part in parts)
            total += part.Count;

        // One lookup by id per visit: each visit remembers its user's number (-1: not kept), so placing it takes none.
        var numberOfVisit = new int[total];
        var numbers = new Dictionary<long, int>();
        var users = new List<long>();
        var counts = new List<int>();
        var at = 0;
        foreach (var part in parts)
        {
            for (var i = 0; i < part.Count; i++, at++)
            {
                var visit = part[i];
                if (keep is not null && !keep(visit))
                {
                    numberOfVisit[at] = -1;
                    continue;
                }

                ref var number = ref CollectionsMarshal.GetValueRefOrAddDefault(numbers, visit.UserId, out var seen);
                if (!seen)
                {
                    number = users.Count;
                    users.Add(visit.UserId);
                    counts.Add(0);
                }

                CollectionsMarshal.AsSpan(counts)[number]++;
                numberOfVisit[at] = number;
            }
        }

        var sorted = users.ToArray();
        var numberAtRank = new int[sorted.Length];
        for (var n = 0; n < numberAtRank.Length; n++)
            numberAtRank[n] = n;
        Array.Sort(sorted, numberAtRank);
        var rankOfNumber = new int[sorted.Length];
        var starts = new int[sorted.Length + 1];
        for (var rank = 0; rank < sorted.Length; rank++)
        {
            rankOfNumber[numberAtRank[rank]] = rank;
            starts[rank + 1] = starts[rank] + counts[numberAtRank[rank]];
        }

        var fill = starts[..^1];
        var visits = new PageVisit[starts[^1]];
        at = 0;
        foreach (var part in parts)
        {
            for (var i = 0; i < part.Count; i++, at++)
            {
                if (numberOfVisit[at] >= 0)
                    visits[fill[rankOfNumber[numberOfVisit[at]]]++] = new PageVisit(part[i].VisitTimeMicros, part[i].Page);
            }
        }

        for (var rank = 0; rank < sorted.Length; rank++)
            BatchGrouping.SortStable(visits.AsSpan(starts[rank], starts[rank + 1] - starts[rank]));
        return new VisitsByUser(numbers, sorted, starts, visits);
    }
}

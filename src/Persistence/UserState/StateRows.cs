namespace Sessionization.Persistence.UserState;

/// <summary>
/// Users' stored rows in id order, each user once. A batch steps its users in id order, so it reads these by walking
/// them, and the states a batch leaves are written here in that order as it goes: a few hundred thousand users a batch
/// looked up and inserted by hash cost a cache miss each, and the tables' entries were tens of megabytes to allocate.
/// </summary>
public sealed class StateRows
{
    public static readonly StateRows Empty = new([], 0);

    private readonly EventTimeStateRow[] _rows;

    /// <param name="rows">In ascending user id, each user once; the first <paramref name="count"/> are the rows.</param>
    public StateRows(EventTimeStateRow[] rows, int count)
    {
        _rows = rows;
        Count = count;
    }

    public int Count { get; }

    public EventTimeStateRow this[int index] => _rows[index];

    /// <summary>The rows in id order, each user once: of two rows of one user, either is kept (they are the same row).</summary>
    public static StateRows Of(List<EventTimeStateRow> rows)
    {
        var sorted = rows.ToArray();
        // Sorted by a separate array of the ids: the sort then compares numbers in place, not rows through a delegate
        // call each (a worker's quarter of a million rows a batch: about 75 ms that way).
        var ids = new long[sorted.Length];
        for (var i = 0; i < sorted.Length; i++)
            ids[i] = sorted[i].UserId;
        Array.Sort(ids, sorted);
        var count = 0;
        foreach (var row in sorted)
        {
            if (count == 0 || sorted[count - 1].UserId != row.UserId)
                sorted[count++] = row;
        }

        return new StateRows(sorted, count);
    }

    public bool TryGetValue(long user, out EventTimeStateRow row)
    {
        int low = 0, high = Count - 1;
        while (low <= high)
        {
            var middle = low + ((high - low) >> 1);
            var at = _rows[middle].UserId;
            if (at == user)
            {
                row = _rows[middle];
                return true;
            }

            if (at < user)
                low = middle + 1;
            else
                high = middle - 1;
        }

        row = default;
        return false;
    }
}

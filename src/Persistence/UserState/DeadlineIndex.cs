namespace Sessionization.Persistence.UserState;

/// <summary>
/// Every user with a stored row, with the row's deadline, in id order: a process that runs batch after batch (a
/// worker) reads it from the store once and keeps it up to date from the rows each batch leaves. A batch then finds
/// its due users, and tells apart the users with visits that have no row, without asking the store: a worker's batch
/// of a million visits asked it for about 250,000 due ids and 115,000 users without a row, which with sorting the rows
/// took 105-364 ms of each batch before any user could be stepped (6-22 ms walking this instead).
/// </summary>
public sealed class DeadlineIndex
{
    private readonly long[] _users;
    private readonly long[] _deadlines;

    /// <param name="users">In ascending id, each once; the first <paramref name="count"/> are the entries.</param>
    public DeadlineIndex(long[] users, long[] deadlines, int count)
    {
        _users = users;
        _deadlines = deadlines;
        Count = count;
    }

    public int Count { get; }

    public long UserAt(int index) => _users[index];

    public long DeadlineAt(int index) => _deadlines[index];

    /// <summary>The entries of <paramref name="users"/> with their <paramref name="deadlines"/>, each user once, put in id order.</summary>
    public static DeadlineIndex Of(long[] users, long[] deadlines)
    {
        Array.Sort(users, deadlines);
        for (var i = 1; i < users.Length; i++)
        {
            if (users[i] == users[i - 1])
                throw new ArgumentException($"user {users[i]} has two entries", nameof(users));
        }

        return new DeadlineIndex(users, deadlines, users.Length);
    }

    /// <summary>
    /// The index after a batch that stepped the users of <paramref name="stepped"/> (in id order): theirs replace
    /// their entries, and a user that keeps nothing (no row) has none. Everyone else's entry stays.
    /// </summary>
    public DeadlineIndex After(StateRows stepped)
    {
        var users = new long[Count + stepped.Count];
        var deadlines = new long[users.Length];
        int count = 0, i = 0, s = 0;
        while (i < Count || s < stepped.Count)
        {
            if (s == stepped.Count || (i < Count && _users[i] < stepped[s].UserId))
            {
                (users[count], deadlines[count]) = (_users[i], _deadlines[i]);
                count++;
                i++;
                continue;
            }

            var row = stepped[s++];
            if (i < Count && _users[i] == row.UserId)
                i++;
            if (row.Deadline is { } deadline)
            {
                (users[count], deadlines[count]) = (row.UserId, deadline);
                count++;
            }
        }

        return new DeadlineIndex(users, deadlines, count);
    }
}

namespace Sessionization.Domain;

/// <summary>A user's session: its visits in visit-time order (ties in arrival order).</summary>
public sealed record Session(long UserId, long StartBatch, IReadOnlyList<PageVisit> Visits)
{
    public const string PageSeparator = " -> ";

    public long StartTimeMicros => Visits[0].TimeMicros;

    public long EndTimeMicros => Visits[^1].TimeMicros;

    public int VisitCount => Visits.Count;

    public string ConcatenatedPages => string.Join(PageSeparator, Visits.Select(v => v.Page));

    public static Session Open(long userId, long batch, IReadOnlyList<PageVisit> visits) =>
        new(userId, batch, visits.ToArray());

    /// <summary>
    /// Merges visits that arrived later into the session. Both sides are already ordered by time;
    /// on equal times the visits already in the session come first, because they were committed earlier.
    /// </summary>
    public Session Extend(IReadOnlyList<PageVisit> later)
    {
        var merged = new PageVisit[Visits.Count + later.Count];
        int i = 0, j = 0, k = 0;
        while (i < Visits.Count && j < later.Count)
            merged[k++] = later[j].TimeMicros < Visits[i].TimeMicros ? later[j++] : Visits[i++];
        while (i < Visits.Count)
            merged[k++] = Visits[i++];
        while (j < later.Count)
            merged[k++] = later[j++];
        return this with { Visits = merged };
    }

    public bool Equals(Session? other) =>
        other is not null && UserId == other.UserId && StartBatch == other.StartBatch && Visits.SequenceEqual(other.Visits);

    public override int GetHashCode() => HashCode.Combine(UserId, StartBatch, Visits.Count);
}

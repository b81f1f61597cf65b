namespace Sessionization.Domain;

/// <summary>
/// A session as the output tables record it after a batch: a row of <c>sessions</c> when it completed in
/// <see cref="BatchNumber"/>, of <c>pending_sessions</c> while it is still open.
/// </summary>
public sealed record SessionRecord(long UserId, string ConcatenatedPages, long BatchNumber, long StartTimeMicros, long EndTimeMicros, long VisitCount)
{
    public static SessionRecord From(Session session, long batch) =>
        new(session.UserId, session.ConcatenatedPages, batch, session.StartTimeMicros, session.EndTimeMicros, session.VisitCount);
}

/// <summary>What to do with visits that cannot be read: fail the batch (default), or set them aside and go on.</summary>
public enum BadRowsMode
{
    Fail,
    Quarantine,
}

/// <summary>
/// A visit, or a whole data file, set aside instead of failing the batch, with the reason; <see cref="Row"/> is
/// 1-based within <see cref="SourceFile"/>, null for a whole file. The fields that could be read are kept.
/// </summary>
public sealed record QuarantinedVisit(long BatchNumber, string SourceFile, long? Row, long? UserId, long? VisitTimeMicros, string? Page, string Reason);

/// <summary>Where a batch came from: the visits between two source cursors, recorded in its commits so that a reader (or a restart) can tell which visits made it.</summary>
/// <remarks><paramref name="Sessions"/> names the session rules of an event-time batch (<see cref="SessionRules.Describe"/>), so a reader knows how to read <c>pending_sessions</c>.</remarks>
public sealed record BatchProvenance(long Batch, SourceCursor From, SourceCursor To, long LastVersion, long Visits, string? Sessions = null)
{
    /// <summary>When the batch's work began (Unix milliseconds), for reports of how long batches take; not part of the output.</summary>
    public long? StartedAtMillis { get; init; }
}

/// <summary>
/// How <c>pending_sessions</c> reads in event-time mode. A batch writes there every open session of each user whose
/// sessions it changed (opened, extended, closed, corrected), and nothing for users it left alone, so its cost follows
/// what it touched, not what stays open. A user's open sessions are then its <c>pending_sessions</c> rows of the last
/// batch that wrote any row of that user to either table: a batch that closed the user's last open session wrote a
/// <c>sessions</c> row and no pending one.
/// </summary>
public static class OpenSessions
{
    public static List<SessionRecord> From(IEnumerable<SessionRecord> pending, IEnumerable<SessionRecord> written)
    {
        var pendingRows = pending as IReadOnlyCollection<SessionRecord> ?? pending.ToList();
        var last = new Dictionary<long, long>();
        foreach (var row in pendingRows.Concat(written))
            last[row.UserId] = Math.Max(last.GetValueOrDefault(row.UserId, long.MinValue), row.BatchNumber);
        return [.. pendingRows.Where(r => r.BatchNumber == last[r.UserId]).OrderBy(r => r.UserId).ThenBy(r => r.StartTimeMicros)];
    }
}

namespace Sessionization.Domain;

/// <summary>
/// A session as the output tables record it after a batch: a row of <c>sessions</c> when it completed in
/// <see cref="BatchNumber"/>, of <c>pending_sessions</c> while it is still open. A value, not an object: an
/// event-time batch holds a few hundred thousand of them until it commits, and held in their lists they are not
/// objects for the collector to trace and move.
/// </summary>
public readonly record struct SessionRecord(long UserId, string ConcatenatedPages, long BatchNumber, long StartTimeMicros, long EndTimeMicros, long VisitCount)
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
public sealed class OpenSessions
{
    // Per user, the rows of the latest batch that wrote it a pending row: memory follows the users, not the history.
    private readonly Dictionary<long, (long Batch, List<SessionRecord> Rows)> _latest = [];
    private bool _writtenStarted;

    public static List<SessionRecord> From(IEnumerable<SessionRecord> pending, IEnumerable<SessionRecord> written)
    {
        var open = new OpenSessions();
        foreach (var row in pending)
            open.AddPending(row);
        foreach (var row in written)
            open.AddWritten(row);
        return open.Result();
    }

    /// <summary>Reads both tables once, as streams, holding only each user's latest pending rows.</summary>
    public static async Task<List<SessionRecord>> FromAsync(IAsyncEnumerable<SessionRecord> pending, IAsyncEnumerable<SessionRecord> written, CancellationToken cancellationToken = default)
    {
        var open = new OpenSessions();
        await foreach (var row in pending.WithCancellation(cancellationToken))
            open.AddPending(row);
        await foreach (var row in written.WithCancellation(cancellationToken))
            open.AddWritten(row);
        return open.Result();
    }

    /// <summary>A <c>pending_sessions</c> row, in any order; all of them before the first <see cref="AddWritten"/>.</summary>
    public void AddPending(SessionRecord row)
    {
        if (_writtenStarted)
            throw new InvalidOperationException("pending rows come before the written ones");
        if (!_latest.TryGetValue(row.UserId, out var latest) || row.BatchNumber > latest.Batch)
            _latest[row.UserId] = (row.BatchNumber, [row]);
        else if (row.BatchNumber == latest.Batch)
            latest.Rows.Add(row);
    }

    /// <summary>A <c>sessions</c> row: a later batch that wrote the user a session and no pending row left it nothing open.</summary>
    public void AddWritten(SessionRecord row)
    {
        _writtenStarted = true;
        if (_latest.TryGetValue(row.UserId, out var latest) && row.BatchNumber > latest.Batch)
            _latest.Remove(row.UserId);
    }

    public List<SessionRecord> Result() =>
        [.. _latest.Values.SelectMany(v => v.Rows).OrderBy(r => r.UserId).ThenBy(r => r.StartTimeMicros)];
}

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
public sealed record BatchProvenance(long Batch, SourceCursor From, SourceCursor To, long LastVersion, long Visits);

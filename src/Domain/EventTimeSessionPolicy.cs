using System.Buffers;
using System.Collections.Immutable;

namespace Sessionization.Domain;

/// <summary>
/// The event-time session settings (HOCON <c>sessionization.sessions</c>), in microseconds of <c>visit_time</c>.
/// <see cref="MaxDurationMicros"/> is null when sessions have no maximum duration.
/// </summary>
public sealed record EventTimeSettings(long GapMicros, long? MaxDurationMicros, long WatermarkDelayMicros, long AllowedLatenessMicros);

/// <summary>
/// The watermark: the greatest <c>visit_time</c> committed so far minus the watermark delay. It never goes back.
/// <see cref="None"/> before the first visit; <see cref="EndOfInput"/> after a batch that closes everything.
/// </summary>
public static class Watermark
{
    public const long None = long.MinValue;

    public const long EndOfInput = long.MaxValue;

    /// <summary>The watermark after a batch whose latest visit is <paramref name="latestVisitMicros"/> (null: no visits).</summary>
    public static long After(long before, long? latestVisitMicros, long delayMicros) =>
        latestVisitMicros is { } latest ? Math.Max(before, latest - delayMicros) : before;

    /// <summary>Whether the watermark is at or past <paramref name="micros"/> + <paramref name="offset"/>, without overflowing at either end.</summary>
    public static bool IsAtOrPast(long watermark, long micros, long offset) =>
        watermark != None && (watermark == EndOfInput || watermark - offset >= micros);
}

/// <summary>
/// One user's sessions in event-time mode that a later visit can still change: open sessions, and written
/// (closed) sessions close enough to the watermark that a visit which is not late can still extend, merge or
/// split them. They are kept as whole chains (visits less than a gap apart), because a visit before a chain's
/// first one moves every maximum-duration boundary in it.
/// </summary>
public sealed record EventTimeUserState(long UserId, long LastAppliedBatch, ImmutableArray<EventTimeSession> Sessions)
{
    public static EventTimeUserState Empty(long userId) => new(userId, UserSessionState.NoBatch, []);
}

/// <summary>A session's visits in <c>visit_time</c> order (ties in commit then row order); <see cref="WrittenIn"/> is the batch that wrote it to <c>sessions</c>, null while it is open.</summary>
public sealed record EventTimeSession(ImmutableArray<PageVisit> Visits, long? WrittenIn)
{
    public long StartMicros => Visits[0].TimeMicros;

    public long EndMicros => Visits[^1].TimeMicros;

    public bool Equals(EventTimeSession? other) =>
        other is not null && WrittenIn == other.WrittenIn && Visits.AsSpan().SequenceEqual(other.Visits.AsSpan());

    public override int GetHashCode() => HashCode.Combine(Visits.Length, Visits.IsEmpty ? 0 : StartMicros, WrittenIn);

    public SessionRecord ToRecord(long userId, long batch) =>
        new(userId, ConcatenatedPages(), batch, StartMicros, EndMicros, Visits.Length);

    /// <summary>The pages joined as the <c>sessions</c> table has them, built in place: it runs for every session a batch writes.</summary>
    private string ConcatenatedPages()
    {
        var length = (Visits.Length - 1) * Session.PageSeparator.Length;
        foreach (var visit in Visits)
            length += visit.Page.Length;
        return string.Create(length, Visits, static (span, visits) =>
        {
            var at = 0;
            for (var i = 0; i < visits.Length; i++)
            {
                if (i > 0)
                {
                    Session.PageSeparator.AsSpan().CopyTo(span[at..]);
                    at += Session.PageSeparator.Length;
                }

                visits[i].Page.AsSpan().CopyTo(span[at..]);
                at += visits[i].Page.Length;
            }
        });
    }
}

/// <summary>
/// What one batch did to one user's event-time sessions: the visits set aside as late, the rows to write to
/// <c>sessions</c> (closed sessions, new or corrected), the rows written earlier that the batch removes (a
/// corrected session's old row, sessions merged into one), and the sessions the batch opened or changed that stay open.
/// </summary>
public sealed record EventTimeStep(
    EventTimeUserState State,
    IReadOnlyList<PageVisit> Late,
    IReadOnlyList<SessionRecord> Written,
    IReadOnlyList<SessionRecord> Removed,
    IReadOnlyList<SessionRecord> OpenedOrChanged)
{
    /// <summary>Whether the batch wrote, took out, opened or changed any of the user's sessions.</summary>
    public bool ChangesSessions => Written.Count > 0 || Removed.Count > 0 || OpenedOrChanged.Count > 0;

    public bool ChangesTables => ChangesSessions || Late.Count > 0;
}

/// <summary>
/// The event-time session rule, pure: a visit less than <c>gap</c> after the user's previous visit continues its
/// session, <c>gap</c> or more starts a new one, and so does a visit at or after <c>start + max-duration</c>. A
/// session closes (is written) in the first batch after which the watermark is at or past <c>end + gap</c> or
/// <c>start + max-duration</c>. A visit is late when the watermark before its batch is at or past
/// <c>visit_time + gap + allowed-lateness</c>; every other visit joins its sessions, correcting written ones.
/// </summary>
public sealed class EventTimeSessionPolicy(EventTimeSettings settings)
{
    public EventTimeSettings Settings { get; } = settings;

    public bool IsLate(long visitMicros, long watermarkBefore) =>
        Watermark.IsAtOrPast(watermarkBefore, visitMicros, Settings.GapMicros + Settings.AllowedLatenessMicros);

    /// <summary>Whether a session is complete once the watermark is <paramref name="watermark"/>.</summary>
    public bool Closes(EventTimeSession session, long watermark) => Closes(session.StartMicros, session.EndMicros, watermark);

    private bool Closes(long startMicros, long endMicros, long watermark) =>
        Watermark.IsAtOrPast(watermark, endMicros, Settings.GapMicros)
        || (Settings.MaxDurationMicros is { } max && Watermark.IsAtOrPast(watermark, startMicros, max));

    /// <summary>
    /// Whether no visit that is not late can reach a chain ending at <paramref name="chainEndMicros"/> any more:
    /// such a visit is after <c>watermark - gap - lateness</c>, so it starts a new chain once that is a gap past the end.
    /// </summary>
    public bool Settled(long chainEndMicros, long watermark) =>
        Watermark.IsAtOrPast(watermark, chainEndMicros, (2 * Settings.GapMicros) + Settings.AllowedLatenessMicros);

    /// <summary>
    /// Splits one user's visits, already in <c>visit_time</c> order (ties in commit then row order), into chains of
    /// visits less than a gap apart, each split further by the maximum duration from its first visit.
    /// </summary>
    public List<List<ImmutableArray<PageVisit>>> Chains(IReadOnlyList<PageVisit> ordered)
    {
        var visits = ordered.ToArray();
        var chains = new List<List<ImmutableArray<PageVisit>>>();
        List<ImmutableArray<PageVisit>>? chain = null;
        for (var start = 0; start < visits.Length;)
        {
            var end = SessionEnd(visits, start, out var endsChain);
            (chain ??= []).Add(ImmutableArray.Create(visits, start, end - start));
            if (endsChain)
            {
                chains.Add(chain);
                chain = null;
            }

            start = end;
        }

        return chains;
    }

    /// <summary>
    /// Where the session starting at <paramref name="start"/> of visits in time order ends (exclusive): at the first
    /// visit a gap or more after the one before it (the chain ends too), or at or after the session's start plus the
    /// maximum duration (the chain goes on). The one place both splits are decided.
    /// </summary>
    private int SessionEnd(ReadOnlySpan<PageVisit> ordered, int start, out bool endsChain)
    {
        for (var i = start + 1; i < ordered.Length; i++)
        {
            endsChain = ordered[i].TimeMicros - ordered[i - 1].TimeMicros >= Settings.GapMicros;
            if (endsChain || (Settings.MaxDurationMicros is { } max && ordered[i].TimeMicros - ordered[start].TimeMicros >= max))
                return i;
        }

        endsChain = true;
        return ordered.Length;
    }

    /// <summary>
    /// Applies one batch to one user: <paramref name="visits"/> are the user's visits in the batch in commit then row
    /// order (possibly none: a batch that only moves the watermark), <paramref name="watermarkBefore"/> the watermark
    /// the previous batch left, <paramref name="watermarkAfter"/> this batch's. At the <paramref name="endOfInput"/> every
    /// session closes, while what is kept for later visits follows the watermark as always. Null when the batch was
    /// applied already.
    /// </summary>
    public EventTimeStep? Step(EventTimeUserState state, long batch, ReadOnlySpan<PageVisit> visits, long watermarkBefore, long watermarkAfter, bool endOfInput = false)
    {
        if (batch <= state.LastAppliedBatch)
            return null;
        if (watermarkAfter < watermarkBefore)
            throw new ArgumentException($"the watermark went back from {watermarkBefore} to {watermarkAfter} in batch {batch}", nameof(watermarkAfter));

        // Step runs for every user a batch touches, so it allocates only what the user's case needs: the visits in
        // order go in one pooled buffer, sessions are ranges of it, and only a session that is new or changed is copied.
        var old = state.Sessions;
        var keptVisits = 0;
        foreach (var session in old)
            keptVisits += session.Visits.Length;
        var pool = ArrayPool<PageVisit>.Shared;
        var buffer = pool.Rent(keptVisits + visits.Length);
        PageVisit[]? merged = null;
        try
        {
            // Stable: a visit already kept was committed before this batch's, so it comes first on equal times.
            var at = 0;
            foreach (var session in old)
            {
                session.Visits.AsSpan().CopyTo(buffer.AsSpan(at));
                at += session.Visits.Length;
            }

            List<PageVisit>? late = null;
            foreach (var visit in visits)
            {
                if (IsLate(visit.TimeMicros, watermarkBefore))
                    (late ??= []).Add(visit);
                else
                    buffer[at++] = visit;
            }

            var ordered = buffer.AsSpan(0, at);
            var arriving = ordered[keptVisits..];
            BatchGrouping.SortStable(arriving);
            if (keptVisits > 0 && arriving.Length > 0)
            {
                merged = pool.Rent(at);
                Merge(ordered[..keptVisits], arriving, merged);
                ordered = merged.AsSpan(0, at);
            }

            return Sessions(state, batch, ordered, watermarkAfter, endOfInput, late);
        }
        finally
        {
            pool.Return(buffer, clearArray: true);
            if (merged is not null)
                pool.Return(merged, clearArray: true);
        }
    }

    /// <summary>
    /// Splits the user's visits in order into chains and sessions, keeps each session it had already where the batch
    /// left it as it was, and makes rows for the sessions it opened, changed, wrote or took out.
    /// </summary>
    private EventTimeStep Sessions(EventTimeUserState state, long batch, ReadOnlySpan<PageVisit> ordered, long watermarkAfter, bool endOfInput, List<PageVisit>? late)
    {
        var old = state.Sessions;
        Span<bool> unchanged = old.Length <= 64 ? stackalloc bool[old.Length] : new bool[old.Length];
        List<SessionRecord>? written = null;
        List<SessionRecord>? openedOrChanged = null;
        var kept = ImmutableArray.CreateBuilder<EventTimeSession>(old.Length + 1);
        var chainKept = new List<EventTimeSession>(old.Length + 1);
        for (var start = 0; start < ordered.Length;)
        {
            var end = SessionEnd(ordered, start, out var endsChain);
            var range = ordered[start..end];
            start = end;
            var previous = Find(old, range);
            var closes = endOfInput || Closes(range[0].TimeMicros, range[^1].TimeMicros, watermarkAfter);
            if (previous >= 0 && (old[previous].WrittenIn is not null || !closes))
            {
                unchanged[previous] = true;
                chainKept.Add(old[previous]);
            }
            else
            {
                var session = new EventTimeSession(ImmutableArray.Create(range), closes ? batch : null);
                (closes ? written ??= [] : openedOrChanged ??= []).Add(session.ToRecord(state.UserId, batch));
                chainKept.Add(session);
            }

            if (endsChain)
            {
                if (!Settled(range[^1].TimeMicros, watermarkAfter))
                    kept.AddRange(chainKept);
                chainKept.Clear();
            }
        }

        List<SessionRecord>? removed = null;
        for (var i = 0; i < old.Length; i++)
        {
            if (old[i].WrittenIn is { } writtenIn && !unchanged[i])
                (removed ??= []).Add(old[i].ToRecord(state.UserId, writtenIn));
        }

        return new EventTimeStep(
            new EventTimeUserState(state.UserId, batch, kept.DrainToImmutable()), late ?? [], written ?? [], removed ?? [], openedOrChanged ?? []);
    }

    /// <summary>
    /// The watermark at which this user's state next needs a batch even without visits: an open session closes,
    /// or a chain settles and is let go. Null when nothing is kept.
    /// </summary>
    public long? NextDeadline(EventTimeUserState state)
    {
        long? next = null;
        foreach (var session in state.Sessions)
        {
            var due = session.WrittenIn is null
                ? Math.Min(session.EndMicros + Settings.GapMicros, Settings.MaxDurationMicros is { } max ? session.StartMicros + max : long.MaxValue)
                : session.EndMicros + (2 * Settings.GapMicros) + Settings.AllowedLatenessMicros;
            next = next is { } n ? Math.Min(n, due) : due;
        }

        return next;
    }

    /// <summary>The sessions of all <paramref name="visits"/> at once (in commit then row order): what any batching must end with.</summary>
    public IReadOnlyList<SessionRecord> Direct(IEnumerable<Visit> visits, long batch = 0)
    {
        var sessions = new List<SessionRecord>();
        foreach (var user in visits.GroupBy(v => v.UserId).OrderBy(g => g.Key))
        {
            var ordered = user.Select(v => new PageVisit(v.VisitTimeMicros, v.Page)).OrderBy(v => v.TimeMicros).ToList();
            foreach (var chain in Chains(ordered))
                sessions.AddRange(chain.Select(s => new EventTimeSession(s, batch).ToRecord(user.Key, batch)));
        }

        return sessions;
    }

    /// <summary>The index of the session among <paramref name="sessions"/> with exactly these visits; -1 if none.</summary>
    private static int Find(ImmutableArray<EventTimeSession> sessions, ReadOnlySpan<PageVisit> visits)
    {
        for (var i = 0; i < sessions.Length; i++)
        {
            if (sessions[i].StartMicros == visits[0].TimeMicros && sessions[i].Visits.AsSpan().SequenceEqual(visits))
                return i;
        }

        return -1;
    }

    /// <summary>Merges two runs in time order; on equal times the kept visit comes first.</summary>
    private static void Merge(ReadOnlySpan<PageVisit> kept, ReadOnlySpan<PageVisit> arriving, Span<PageVisit> into)
    {
        int i = 0, j = 0, k = 0;
        while (i < kept.Length && j < arriving.Length)
            into[k++] = arriving[j].TimeMicros < kept[i].TimeMicros ? arriving[j++] : kept[i++];
        kept[i..].CopyTo(into[k..]);
        arriving[j..].CopyTo(into[(k + kept.Length - i)..]);
    }
}

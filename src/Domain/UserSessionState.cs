namespace Sessionization.Domain;

/// <summary>An event of one user's session; each batch produces at most one per user.</summary>
public interface IUserSessionEvent
{
    long Batch { get; }
}

public sealed record SessionOpened(long Batch, IReadOnlyList<PageVisit> Visits) : IUserSessionEvent
{
    public bool Equals(SessionOpened? other) => other is not null && Batch == other.Batch && Visits.SequenceEqual(other.Visits);

    public override int GetHashCode() => HashCode.Combine(Batch, Visits.Count);
}

public sealed record SessionExtended(long Batch, IReadOnlyList<PageVisit> Visits) : IUserSessionEvent
{
    public bool Equals(SessionExtended? other) => other is not null && Batch == other.Batch && Visits.SequenceEqual(other.Visits);

    public override int GetHashCode() => HashCode.Combine(Batch, Visits.Count);
}

public sealed record SessionClosed(long Batch) : IUserSessionEvent;

/// <summary>What one batch did to one user's session.</summary>
public abstract record BatchOutcome(long Batch, Session Session);

/// <summary>The session is still open after the batch.</summary>
public sealed record SessionPending(long Batch, Session Session) : BatchOutcome(Batch, Session);

/// <summary>The session ended in the batch.</summary>
public sealed record SessionCompleted(long Batch, Session Session) : BatchOutcome(Batch, Session);

/// <summary>
/// One user's session state. <see cref="Decide"/> turns a batch's visits into at most one event;
/// <see cref="Apply"/> folds an event in. Remembering the last applied batch and the session it closed
/// lets a replayed batch be answered with the outcome already recorded instead of being applied twice.
/// The close rule: a session that is not extended in the batch right after the last one it was in is
/// closed in that batch. The user need not hear of it (the coordinator writes the completed row from the
/// previous batch's pending row); its state still shows the session open, and <see cref="OpenAt"/> reads it
/// as closed from then on.
/// </summary>
public sealed record UserSessionState(long UserId, long LastAppliedBatch, Session? Open, Session? ClosedInLastBatch)
{
    public const long NoBatch = -1;

    public static UserSessionState Empty(long userId) => new(userId, NoBatch, null, null);

    /// <summary>
    /// The event for <paramref name="batch"/>, or null when there is nothing to record: the batch was
    /// applied already, or the user has neither visits in it nor an open session.
    /// </summary>
    public IUserSessionEvent? Decide(long batch, IReadOnlyList<PageVisit> visitsInBatch)
    {
        if (batch <= LastAppliedBatch)
            return null;
        var open = OpenAt(batch);
        if (visitsInBatch.Count == 0)
            return open is null ? null : new SessionClosed(batch);
        return open is null ? new SessionOpened(batch, visitsInBatch) : new SessionExtended(batch, visitsInBatch);
    }

    /// <summary>The session still open when <paramref name="batch"/> begins: only one extended in the batch just before.</summary>
    public Session? OpenAt(long batch) => LastAppliedBatch == batch - 1 ? Open : null;

    public UserSessionState Apply(IUserSessionEvent @event) => @event switch
    {
        SessionOpened e => new UserSessionState(UserId, e.Batch, Session.Open(UserId, e.Batch, e.Visits), null),
        SessionExtended e when Open is not null => new UserSessionState(UserId, e.Batch, Open.Extend(e.Visits), null),
        SessionClosed e when Open is not null => new UserSessionState(UserId, e.Batch, null, Open),
        _ => throw new InvalidOperationException($"{@event.GetType().Name} for batch {@event.Batch} does not apply to user {UserId} (open session: {Open is not null})"),
    };

    /// <summary>The outcome recorded for <paramref name="batch"/>, or null if this user took no part in it.</summary>
    public BatchOutcome? OutcomeOf(long batch)
    {
        if (batch != LastAppliedBatch)
            return null;
        if (Open is not null)
            return new SessionPending(batch, Open);
        return ClosedInLastBatch is null ? null : new SessionCompleted(batch, ClosedInLastBatch);
    }
}

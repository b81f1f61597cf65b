namespace Sessionization.Actors;

/// <summary>How a failure is put into one line: a task's AggregateException is looked through, a plugin's wrapped cause is followed to its root.</summary>
public static class Failures
{
    /// <summary>The message of a failed task: its first inner exception's when the task wrapped it.</summary>
    public static string Message(Exception e) => (e is AggregateException { InnerException: { } inner } ? inner : e).Message;

    /// <summary>The root cause, for exceptions that plugins wrap several times over.</summary>
    public static Exception Innermost(Exception e) => e.InnerException is null ? e : Innermost(e.InnerException);

    /// <summary>The first exception of type <typeparamref name="T"/> along the chain of causes, if any.</summary>
    public static T? Find<T>(Exception? e)
        where T : Exception => e switch
        {
            null => null,
            T found => found,
            _ => Find<T>(e.InnerException),
        };
}

namespace Sessionization.Domain;

/// <summary>
/// How long a worker waits before trying again after failures in a row: <c>initial</c>, doubled for each further
/// failure, never more than <c>max</c>. A batch that keeps failing on a broken file then costs a line and an attempt
/// every few minutes, not two a second.
/// </summary>
public static class Backoff
{
    public static TimeSpan Delay(int failuresInARow, TimeSpan initial, TimeSpan max)
    {
        if (failuresInARow < 1)
            return TimeSpan.Zero;
        var delay = initial;
        for (var i = 1; i < failuresInARow && delay < max; i++)
            delay += delay;
        return delay < max ? delay : max;
    }
}

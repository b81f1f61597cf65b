using System.Globalization;

namespace Sessionization.Bench;

/// <summary>
/// Event-time sessions in SQL, the way a DuckDB user would write them: a visit less than the gap after the user's
/// previous one continues its session, and with a maximum duration a visit at or after the session's start plus
/// that duration starts a new one. The second rule depends on where the session started, so it walks each user's
/// visits with a recursive query; the gap alone is a running sum over a window.
/// </summary>
public static class EventTimeSql
{
    /// <summary>
    /// Sessions of <paramref name="visits"/>, a relation of <c>user_id BIGINT, visit_time_us BIGINT, seq BIGINT, page
    /// VARCHAR</c> where <c>seq</c> orders ties in time (commit, then row): <c>user_id, concatenated_pages,
    /// start_time_us, end_time_us, visit_count</c>.
    /// </summary>
    public static string Sessions(string visits, long gapMicros, long? maxDurationMicros)
    {
        var gap = gapMicros.ToString(CultureInfo.InvariantCulture);
        var ordered = $"""
            ordered AS (
                SELECT user_id, visit_time_us AS t, page,
                       row_number() OVER w AS rn,
                       coalesce(visit_time_us - lag(visit_time_us) OVER w >= {gap}, true) AS after_gap
                FROM {visits}
                WINDOW w AS (PARTITION BY user_id ORDER BY visit_time_us, seq))
            """;
        if (maxDurationMicros is not { } max)
        {
            return $"""
                WITH {ordered},
                numbered AS (
                    SELECT *, sum(after_gap::INT) OVER (PARTITION BY user_id ORDER BY rn) AS session_no FROM ordered)
                SELECT user_id, string_agg(page, ' -> ' ORDER BY rn) AS concatenated_pages,
                       min(t) AS start_time_us, max(t) AS end_time_us, count(*) AS visit_count
                FROM numbered GROUP BY user_id, session_no
                """;
        }

        var limit = max.ToString(CultureInfo.InvariantCulture);
        return $"""
            WITH RECURSIVE {ordered},
            walk AS (
                SELECT user_id, rn, t AS session_start, 0 AS session_no FROM ordered WHERE rn = 1
                UNION ALL
                SELECT o.user_id, o.rn,
                       CASE WHEN o.after_gap OR o.t - w.session_start >= {limit} THEN o.t ELSE w.session_start END,
                       CASE WHEN o.after_gap OR o.t - w.session_start >= {limit} THEN w.session_no + 1 ELSE w.session_no END
                FROM walk w JOIN ordered o ON o.user_id = w.user_id AND o.rn = w.rn + 1)
            SELECT o.user_id, string_agg(o.page, ' -> ' ORDER BY o.rn) AS concatenated_pages,
                   min(o.t) AS start_time_us, max(o.t) AS end_time_us, count(*) AS visit_count
            FROM walk w JOIN ordered o USING (user_id, rn)
            GROUP BY o.user_id, w.session_no
            """;
    }
}

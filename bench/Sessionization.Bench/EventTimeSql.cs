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
    /// Each visit of <paramref name="visits"/> (a relation of <c>user_id BIGINT, visit_time_us BIGINT, seq BIGINT, page
    /// VARCHAR</c> where <c>seq</c> orders ties in time: commit, then row) with its session:
    /// <c>user_id, visit_time_us, seq, page, rn, session_no</c>, <c>rn</c> its place among the user's visits.
    /// </summary>
    public static string Numbered(string visits, long gapMicros, long? maxDurationMicros)
    {
        var gap = gapMicros.ToString(CultureInfo.InvariantCulture);
        var ordered = $"""
            ordered AS (
                SELECT user_id, visit_time_us, seq, page,
                       row_number() OVER w AS rn,
                       coalesce(visit_time_us - lag(visit_time_us) OVER w >= {gap}, true) AS after_gap
                FROM {visits}
                WINDOW w AS (PARTITION BY user_id ORDER BY visit_time_us, seq))
            """;
        if (maxDurationMicros is not { } max)
        {
            return $"""
                WITH {ordered}
                SELECT user_id, visit_time_us, seq, page, rn, sum(after_gap::INT) OVER (PARTITION BY user_id ORDER BY rn) AS session_no FROM ordered
                """;
        }

        var limit = max.ToString(CultureInfo.InvariantCulture);
        return $"""
            WITH RECURSIVE {ordered},
            walk AS (
                SELECT user_id, rn, visit_time_us AS session_start, 0 AS session_no FROM ordered WHERE rn = 1
                UNION ALL
                SELECT o.user_id, o.rn,
                       CASE WHEN o.after_gap OR o.visit_time_us - w.session_start >= {limit} THEN o.visit_time_us ELSE w.session_start END,
                       CASE WHEN o.after_gap OR o.visit_time_us - w.session_start >= {limit} THEN w.session_no + 1 ELSE w.session_no END
                FROM walk w JOIN ordered o ON o.user_id = w.user_id AND o.rn = w.rn + 1)
            SELECT o.user_id, o.visit_time_us, o.seq, o.page, o.rn, w.session_no
            FROM walk w JOIN ordered o USING (user_id, rn)
            """;
    }

    /// <summary>
    /// Sessions of <paramref name="visits"/> (as for <see cref="Numbered"/>): <c>user_id, concatenated_pages,
    /// start_time_us, end_time_us, visit_count</c>.
    /// </summary>
    public static string Sessions(string visits, long gapMicros, long? maxDurationMicros) => $"""
        SELECT user_id, string_agg(page, ' -> ' ORDER BY rn) AS concatenated_pages,
               min(visit_time_us) AS start_time_us, max(visit_time_us) AS end_time_us, count(*) AS visit_count
        FROM ({Numbered(visits, gapMicros, maxDurationMicros)}) GROUP BY user_id, session_no
        """;
}

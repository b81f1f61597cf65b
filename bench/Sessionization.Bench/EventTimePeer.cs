using System.Diagnostics;
using System.Globalization;
using DuckDB.NET.Data;

namespace Sessionization.Bench;

/// <summary>
/// The event-time semantics incrementally in DuckDB, as a DuckDB user would keep them between runs: the visits of
/// sessions still open are kept in a table; each run adds its Parquet files' visits, cuts sessions over the union
/// (<see cref="EventTimeSql"/>), moves the watermark to the latest visit time less the delay, writes the sessions the
/// watermark closes and keeps the visits of the others. It assumes what the benchmark's workload guarantees: no visit
/// arrives behind the watermark, so written sessions never need correcting.
/// </summary>
public sealed class EventTimePeer : IDisposable
{
    private readonly DuckDBConnection _connection;
    private readonly long _gap;
    private readonly long? _maxDuration;
    private readonly long _delay;

    public EventTimePeer(string databasePath, long gapMicros, long? maxDurationMicros, long watermarkDelayMicros)
    {
        (_gap, _maxDuration, _delay) = (gapMicros, maxDurationMicros, watermarkDelayMicros);
        _connection = PeerDatabase.Open(databasePath);
        Execute("""
            CREATE TABLE IF NOT EXISTS kept (user_id BIGINT, visit_time_us BIGINT, seq BIGINT, page VARCHAR);
            CREATE TABLE IF NOT EXISTS watermark (w BIGINT);
            CREATE TABLE IF NOT EXISTS peer_sessions (user_id BIGINT, concatenated_pages VARCHAR, batch_number BIGINT);
            """);
    }

    /// <summary>Processes one run (<paramref name="endOfInput"/>: close everything); <paramref name="files"/> are absolute Parquet paths in commit order.</summary>
    public TimeSpan Run(int batch, IReadOnlyList<string> files, bool endOfInput = false)
    {
        var clock = Stopwatch.StartNew();
        var list = "[" + string.Join(", ", files.Select(f => "'" + f.Replace("'", "''") + "'")) + "]";
        var read = files.Count == 0
            ? "SELECT * FROM kept WHERE false"
            : $"""
              SELECT user_id, epoch_us(visit_time) AS visit_time_us,
                     ({batch}::BIGINT << 40) + (list_position({list}, filename)::BIGINT << 28) + file_row_number AS seq, page
              FROM read_parquet({list}, filename = true, file_row_number = true)
              """;
        var gap = Text(_gap);
        var closes = endOfInput
            ? "true"
            : $"end_us + {gap} <= (SELECT max(w) FROM watermark)" + (_maxDuration is { } max ? $" OR start_us + {Text(max)} <= (SELECT max(w) FROM watermark)" : "");
        Execute($"""
            CREATE OR REPLACE TEMP TABLE arriving AS {read};
            INSERT INTO watermark SELECT greatest(coalesce((SELECT max(w) FROM watermark), -9223372036854775807), coalesce(max(visit_time_us) - {Text(_delay)}, -9223372036854775807)) FROM arriving;
            CREATE OR REPLACE TEMP TABLE numbered AS
                {EventTimeSql.Numbered("(SELECT * FROM kept UNION ALL SELECT * FROM arriving)", _gap, _maxDuration)};
            CREATE OR REPLACE TEMP TABLE cut AS
                SELECT user_id, session_no, min(visit_time_us) AS start_us, max(visit_time_us) AS end_us,
                       string_agg(page, ' -> ' ORDER BY rn) AS pages
                FROM numbered GROUP BY user_id, session_no;
            INSERT INTO peer_sessions SELECT user_id, pages, {batch} FROM cut WHERE {closes};
            CREATE OR REPLACE TABLE kept AS
                SELECT n.user_id, n.visit_time_us, n.seq, n.page FROM numbered n JOIN cut c USING (user_id, session_no) WHERE NOT ({closes});
            """);
        return clock.Elapsed;
    }

    /// <summary>Sessions rows of ours that the peer lacks plus rows of the peer that ours lacks (0 and 0: they agree).</summary>
    public (long Missing, long Extra) Compare(IReadOnlyList<string> ourFiles)
    {
        if (ourFiles.Count == 0)
            return (Scalar("SELECT count(*) FROM peer_sessions"), 0);
        var list = "[" + string.Join(", ", ourFiles.Select(f => "'" + f.Replace("'", "''") + "'")) + "]";
        var ours = $"SELECT user_id, concatenated_pages, batch_number FROM read_parquet({list})";
        return (Scalar($"SELECT count(*) FROM (SELECT * FROM peer_sessions EXCEPT ALL {ours})"), Scalar($"SELECT count(*) FROM ({ours} EXCEPT ALL SELECT * FROM peer_sessions)"));
    }

    private long Scalar(string sql)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private void Execute(string sql)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Gives back the memory DuckDB holds for the database (<see cref="PeerDatabase.Reopen"/>).</summary>
    public void LetGoOfMemory() => PeerDatabase.Reopen(_connection);

    public void Dispose() => _connection.Dispose();
}

using System.Diagnostics;
using DuckDB.NET.Data;

namespace Sessionization.Bench;

/// <summary>
/// The same incremental semantics in DuckDB, as the SQL version of the pattern does it: each run reads the
/// run's Parquet files, full-outer-joins them per user with the previous run's pending sessions (kept in a
/// DuckDB table between runs), writes completed and pending sessions, and keeps the new pending ones.
/// </summary>
public sealed class DuckDbPeer : IDisposable
{
    private readonly DuckDBConnection _connection;

    public DuckDbPeer(string databasePath)
    {
        _connection = PeerDatabase.Open(databasePath);
        Execute("""
            CREATE TABLE IF NOT EXISTS pending (user_id BIGINT, visits STRUCT(t TIMESTAMPTZ, s BIGINT, p VARCHAR)[]);
            CREATE TABLE IF NOT EXISTS peer_pending (user_id BIGINT, concatenated_pages VARCHAR, batch_number BIGINT);
            CREATE TABLE IF NOT EXISTS peer_sessions (user_id BIGINT, concatenated_pages VARCHAR, batch_number BIGINT);
            """);
    }

    /// <summary>Processes one run; <paramref name="files"/> are absolute Parquet paths in commit order.</summary>
    public TimeSpan Run(int batch, IReadOnlyList<string> files)
    {
        var clock = Stopwatch.StartNew();
        var list = "[" + string.Join(", ", files.Select(f => "'" + f.Replace("'", "''") + "'")) + "]";
        // The sequence key keeps ties in visit time in commit, then row order; earlier runs sort first.
        Execute($"""
            CREATE OR REPLACE TEMP TABLE batch AS
            SELECT user_id, list(struct_pack(t := visit_time, s := seq, p := page) ORDER BY visit_time, seq) AS visits
            FROM (
                SELECT user_id, visit_time, page,
                       ({batch}::BIGINT << 40) + (list_position({list}, filename)::BIGINT << 28) + file_row_number AS seq
                FROM read_parquet({list}, filename = true, file_row_number = true))
            GROUP BY user_id;
            CREATE OR REPLACE TEMP TABLE merged AS
            SELECT coalesce(b.user_id, p.user_id) AS user_id,
                   CASE WHEN b.user_id IS NULL THEN p.visits
                        WHEN p.user_id IS NULL THEN b.visits
                        ELSE list_sort(list_concat(p.visits, b.visits)) END AS visits,
                   b.user_id IS NULL AS closed
            FROM batch b FULL OUTER JOIN pending p ON b.user_id = p.user_id;
            INSERT INTO peer_sessions
                SELECT user_id, array_to_string(list_transform(visits, x -> x.p), ' -> '), {batch} FROM merged WHERE closed;
            INSERT INTO peer_pending
                SELECT user_id, array_to_string(list_transform(visits, x -> x.p), ' -> '), {batch} FROM merged WHERE NOT closed;
            CREATE OR REPLACE TABLE pending AS SELECT user_id, visits FROM merged WHERE NOT closed;
            """);
        return clock.Elapsed;
    }

    /// <summary>Rows of ours that the peer lacks plus rows of the peer that ours lacks, per table (0 and 0 means they agree).</summary>
    public (long Missing, long Extra) Compare(string peerTable, IReadOnlyList<string> ourFiles)
    {
        if (ourFiles.Count == 0)
            return (Scalar($"SELECT count(*) FROM {peerTable}"), 0);
        var list = "[" + string.Join(", ", ourFiles.Select(f => "'" + f.Replace("'", "''") + "'")) + "]";
        var ours = $"SELECT user_id, concatenated_pages, batch_number FROM read_parquet({list})";
        var missing = Scalar($"SELECT count(*) FROM (SELECT * FROM {peerTable} EXCEPT ALL {ours})");
        var extra = Scalar($"SELECT count(*) FROM ({ours} EXCEPT ALL SELECT * FROM {peerTable})");
        return (missing, extra);
    }

    public long Scalar(string sql)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private void Execute(string sql)
    {
        using var command = _connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    /// <summary>Gives back the memory DuckDB holds for the database (<see cref="PeerDatabase.Reopen"/>).</summary>
    public void LetGoOfMemory() => PeerDatabase.Reopen(_connection);

    public void Dispose() => _connection.Dispose();
}

using System.Buffers.Binary;
using System.Data.Common;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;
using Npgsql;
using Sessionization.Domain;
using SQLitePCL;

namespace Sessionization.Persistence.UserState;

/// <summary>
/// The durable state of event-time sessions: each user's current state (its sessions still open or still open to
/// correction) and the watermark at which it next needs a batch without visits (its deadline), keyed by user id. A
/// batch reads only the users it touches: those with visits, by id, and those whose deadline its watermark reached,
/// through the due table, so its cost does not grow with the sessions that stay open untouched.
/// <para>
/// The due table holds a (deadline, user) entry for every row of the users table, added whenever a row is written, and
/// a user is due when one of its entries has the deadline its row has now: entries a later write made stale are left
/// where they are, and a batch deletes the entries its watermark reached (the users they name it read, and wrote
/// again). An index on the users' deadline, kept instead, moved an entry from one place to another for every user a
/// batch wrote, all over the index: about a tenth of the 1M-visit worker's time.
/// </para>
/// <para>
/// A batch's save appends: the states it changed (after-images, a user that keeps nothing as a tombstone) go to a log
/// as one record, and the rows they replace (before-images) to the batch's undo record, in one transaction. Writing
/// the changed users' rows in place instead dirties a page of the users table and of its deadline index per user, all
/// over the file: a batch touching 1% of a million open sessions spent most of its time there. The current state is
/// the users table overlaid with the log, which this process holds in memory (the latest after-image per user, read as
/// the store opens); once the log passes <c>logLimitBytes</c> it is applied (<see cref="ApplyLogAsync"/>), in the
/// background after the batch's commit: the latest after-images are written into the users table, each user once, and
/// the log is emptied, in one transaction. A batch that would pass the limit by itself writes its rows in place, in its
/// save (applying the log first), as applying its log after it would write the same rows with nothing to overlap.
/// </para>
/// <para>
/// A rewind to a retained checkpoint, or a replay of a batch a crash interrupted, drops the log records of the batch
/// and later ones and puts back their before-images, newest batch first, whether or not they were applied: a user's
/// row then holds its state before the batch, which is also what any earlier log record still overlaying it says.
/// Pruning drops the undo of batches no retained checkpoint can reach. A user that keeps nothing has no row.
/// </para>
/// </summary>
public sealed class EventTimeStateStore
{
    private const int UsersPerQuery = 10_000;

    /// <summary>
    /// Before- and after-images are stored in parts of about this size, so no single value grows with the batch. A part
    /// is built in one buffer and copied out as the value: at 8 MB both went to the large object heap, whose budget then
    /// set off a full collection about every batch.
    /// </summary>
    private const int ImagePartBytes = 1 << 20;

    /// <summary>The log size past which a batch applies it (<c>sessionization.persistence.event-time-log-limit</c>).</summary>
    public const long DefaultLogLimitBytes = 16 << 20;

    private readonly Func<DbConnection> _connect;
    private readonly bool _sqlite;
    private readonly string _users;
    private readonly string _undo;
    private readonly string _log;
    private readonly string _meta;
    private readonly string _due;
    private readonly long _logLimitBytes;
    private readonly Lock _overlayLock = new();

    /// <summary>The log as this process last read or wrote it: the latest after-image per user (null: no row). Null: to be read.</summary>
    private Dictionary<long, EventTimeStateRow?>? _overlay;

    /// <summary>The log's version the overlay reflects: every transaction that changes the log counts it up.</summary>
    private long _version = -1;

    private long _logBytes;

    /// <summary>The log's application in the background (<see cref="ApplyLogIfFull"/>): saves and rewinds wait for it.</summary>
    private Task _applying = Task.CompletedTask;

    private EventTimeStateStore(Func<DbConnection> connect, bool sqlite, string? pipelineId, string where, long logLimitBytes)
    {
        _connect = connect;
        _sqlite = sqlite;
        _logLimitBytes = logLimitBytes;
        (_users, _undo, _log, _meta, _due) = TablesFor(pipelineId);
        var bytes = sqlite ? "BLOB" : "BYTEA";
        using var connection = Open();
        RefuseEarlierLayout(connection, TableOfEarlierLayout(pipelineId), where);
        using var command = connection.CreateCommand();
        // On SQLite an INTEGER PRIMARY KEY is the row id: the user's row is found and overwritten in its one b-tree.
        command.CommandText = $"""
            CREATE TABLE IF NOT EXISTS {_users} (
                user_id {(sqlite ? "INTEGER" : "BIGINT")} PRIMARY KEY, deadline BIGINT NOT NULL, state {bytes} NOT NULL);
            CREATE TABLE IF NOT EXISTS {_due} (
                deadline BIGINT NOT NULL, user_id BIGINT NOT NULL, PRIMARY KEY (deadline, user_id)){(sqlite ? " WITHOUT ROWID" : "")};
            CREATE TABLE IF NOT EXISTS {_undo} (
                batch BIGINT NOT NULL, part INTEGER NOT NULL, users INTEGER NOT NULL, before_images {bytes} NOT NULL,
                PRIMARY KEY (batch, part));
            CREATE TABLE IF NOT EXISTS {_log} (
                batch BIGINT NOT NULL, part INTEGER NOT NULL, users INTEGER NOT NULL, after_images {bytes} NOT NULL,
                PRIMARY KEY (batch, part));
            CREATE TABLE IF NOT EXISTS {_meta} (id INTEGER PRIMARY KEY, log_version BIGINT NOT NULL);
            INSERT INTO {_meta} (id, log_version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
            """;
        command.ExecuteNonQuery();
        ReplaceDeadlineIndex(connection);
        // The log is read as the store opens (a process starting), not by the first batch that reads a user.
        OverlayAsync(connection, CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <summary>
    /// What an SQLite file of event-time state is created with: pages of 16 KB, and WAL. A batch that touches a third of
    /// a million users rewrites about every page of the users table either way; with pages four times the default
    /// there are a quarter as many to find, split, cache and log, and the 1M-visit worker's state saves took about 10%
    /// less (five pairs of runs, alternating). A file already created keeps its page size: SQLite sets it only on creation.
    /// </summary>
    public const string SqliteCreatePragmas = "PRAGMA page_size=16384; PRAGMA journal_mode=WAL;";

    /// <summary>An SQLite file of its own (WAL, synchronous=FULL, pages of 16 KB).</summary>
    public static EventTimeStateStore Sqlite(string path, TimeSpan busyTimeout, string? pipelineId = null, long logLimitBytes = DefaultLogLimitBytes)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = (int)Math.Ceiling(busyTimeout.TotalSeconds) }.ToString();
        using (var wal = new SqliteConnection(connectionString))
        {
            wal.Open();
            using var pragma = wal.CreateCommand();
            pragma.CommandText = SqliteCreatePragmas;
            pragma.ExecuteNonQuery();
        }

        return new EventTimeStateStore(() => new SqliteConnection(connectionString), sqlite: true, pipelineId, path, logLimitBytes);
    }

    /// <summary>A table in the PostgreSQL database that also holds the coordinator's journal.</summary>
    public static EventTimeStateStore PostgreSql(string connectionString, string? pipelineId = null, long logLimitBytes = DefaultLogLimitBytes) =>
        new(() => new NpgsqlConnection(connectionString), sqlite: false, pipelineId, "the PostgreSQL database", logLimitBytes);

    /// <summary>
    /// Starts applying the log in the background (<see cref="ApplyLogAsync"/>) if it has passed its limit and is not
    /// being applied already; null when it does not. The next batch reads meanwhile (the log still overlays the users
    /// table until the application commits); its save waits for it.
    /// </summary>
    public Task? ApplyLogIfFull()
    {
        lock (_overlayLock)
        {
            if (_overlay is null || _logBytes <= _logLimitBytes || !_applying.IsCompleted)
                return null;
            return _applying = Task.Run(() => ApplyLogOnceAsync(CancellationToken.None));
        }
    }

    /// <summary>Completes when no application of the log is running; one that failed left the log as it was.</summary>
    public async Task WhenAppliedAsync()
    {
        Task applying;
        lock (_overlayLock)
            applying = _applying;
        await applying.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>
    /// The users' rows, the before-images rewinds put back, the log and its version, and the users' deadlines: a set of
    /// tables per pipeline.
    /// </summary>
    private static (string Users, string Undo, string Log, string Meta, string Due) TablesFor(string? pipelineId)
    {
        var suffix = Suffix(pipelineId);
        return ("event_time_users" + suffix, "event_time_undo" + suffix, "event_time_log" + suffix, "event_time_meta" + suffix, "event_time_due" + suffix);
    }

    /// <summary>
    /// A store written before the due table had an index on the users' deadline instead: the table gets an entry for
    /// each of its rows and the index goes, in one transaction. The log's rows get theirs as it is applied.
    /// </summary>
    private void ReplaceDeadlineIndex(DbConnection connection)
    {
        var index = _users + "_due";
        if (!Exists(connection, "index", index))
            return;
        using var transaction = connection.BeginTransaction();
        // WHERE true: without it SQLite would read ON CONFLICT as part of the join.
        using var replace = Command(connection, transaction, $"""
            INSERT INTO {_due} (deadline, user_id) SELECT deadline, user_id FROM {_users} WHERE true ON CONFLICT DO NOTHING;
            DROP INDEX IF EXISTS {index};
            """);
        replace.ExecuteNonQuery();
        transaction.Commit();
    }

    private static string Suffix(string? pipelineId) => pipelineId is null ? "" : "_" + Guid.Parse(pipelineId).ToString("N");

    /// <summary>
    /// Records the users' states after <paramref name="batch"/> in one transaction: each as the batch's after-image in
    /// the log (a user whose state keeps nothing as a tombstone: it loses its row) and the row it replaces as the
    /// batch's before-image. Saving a batch again (a replay) first takes back what was saved for it and any later
    /// batch, so the result is the same as saving it once; the caller reads the rows it replaces after taking the batch
    /// back (<see cref="RewindAsync"/>), so they are what this puts back. The changes may still be coming while it
    /// saves; if they end in an error, nothing is saved.
    /// </summary>
    /// <param name="dueAt">
    /// The watermark the batch read its due users at (<see cref="LoadDueIdsAsync"/>), when the changes include every one
    /// of them: their entries are done with. <see cref="Watermark.None"/>: the batch read none, and no entry goes.
    /// </param>
    public async Task SaveBatchAsync(
        long batch, IAsyncEnumerable<EventTimeStateChange> changes, long expectedBytes = 0, long dueAt = Watermark.None, CancellationToken cancellationToken = default)
    {
        await WhenAppliedAsync();
        // A batch that would fill the log by itself has its users' rows written in place instead, while the users are
        // still being stepped, as applying its log afterwards would write the same rows without that overlap.
        var inPlace = expectedBytes > _logLimitBytes;
        await using var connection = await OpenWriterAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var (_, logDropped) = await TakeBackAsync(connection, transaction, batch, cancellationToken);
        var versions = await CountLogVersionAsync(connection, transaction, cancellationToken);
        bool current;
        lock (_overlayLock)
            current = !logDropped && _overlay is not null && versions.Before == _version;
        if (dueAt != Watermark.None)
        {
            // The users these entries name were due at the batch's watermark: the batch read them all, and every one
            // it keeps is written again (a row in place gets its entry below, one in the log as the log is applied).
            await using var consumed = Command(connection, transaction, $"DELETE FROM {_due} WHERE deadline <= @due");
            Parameter(consumed, "@due", dueAt);
            await consumed.ExecuteNonQueryAsync(cancellationToken);
        }

        var undo = new ImageWriter(connection, transaction, _undo, "before_images", batch);
        var log = new ImageWriter(connection, transaction, _log, "after_images", batch);
        var saved = new List<EventTimeStateRow>();
        await using var rows = inPlace ? RowWriter(connection, transaction) : null;
        if (rows is not null)
            await WriteLogIntoTableAsync(connection, transaction, rows, current, cancellationToken);

        await foreach (var (row, before) in changes)
        {
            // A user that keeps nothing and had no row is unchanged: most users a batch lets go are these.
            if (row.KeepsNothing && before is null)
                continue;
            await undo.AddAsync(row.UserId, before, cancellationToken);
            if (rows is null)
            {
                if (current && !Holds(row.UserId, before))
                    throw StateNotHeld(row.UserId, batch);
                await log.AddAsync(row.UserId, row.KeepsNothing ? null : row, cancellationToken);
                saved.Add(row);
                continue;
            }

            // A plain update or insert: a user said to have a row it does not have, or the reverse, fails here
            // instead of losing its before-image.
            var changed = row.KeepsNothing ? await rows.DeleteAsync(row.UserId, cancellationToken)
                : before is not null ? await rows.UpdateAsync(row, cancellationToken)
                : await rows.InsertAsync(row, cancellationToken);
            if (changed != 1)
                throw StateNotHeld(row.UserId, batch);
        }

        if (rows is not null)
            await rows.FinishAsync(cancellationToken);
        await undo.FlushAsync(cancellationToken);
        await log.FlushAsync(cancellationToken);
        var committing = Stopwatch.GetTimestamp();
        await transaction.CommitAsync(cancellationToken);
        SessionizationMetrics.StoreFlushDuration.Record(Stopwatch.GetElapsedTime(committing).TotalSeconds, new KeyValuePair<string, object?>("store", "event-time"));
        lock (_overlayLock)
        {
            if (inPlace)
            {
                (_overlay, _logBytes, _version) = ([], 0, versions.After);
                return;
            }

            // A replay dropped log records, or another store changed the log meanwhile: the overlay is read again.
            if (!current)
            {
                _overlay = null;
                return;
            }

            foreach (var row in saved)
                _overlay![row.UserId] = row.KeepsNothing ? null : row;
            _logBytes += log.Bytes;
            _version = versions.After;
        }
    }

    private static InvalidOperationException StateNotHeld(long user, long batch) =>
        new($"user {user}: batch {batch} was given a stored state the store does not have");

    /// <summary>
    /// Writes the log into the users table, each user's latest after-image once (in user order, so neighbouring rows
    /// share their pages), and empties it, in one transaction. The state it describes is unchanged; the undo records
    /// stay, so rewinds reach across it.
    /// </summary>
    public async Task ApplyLogAsync(CancellationToken cancellationToken = default)
    {
        await WhenAppliedAsync();
        await ApplyLogOnceAsync(cancellationToken);
    }

    private async Task ApplyLogOnceAsync(CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        await using var connection = await OpenWriterAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Counted first: from here on no other transaction changes the log until this one ends.
        var versions = await CountLogVersionAsync(connection, transaction, cancellationToken);
        bool current;
        lock (_overlayLock)
            current = _overlay is not null && versions.Before == _version;
        await using (var rows = RowWriter(connection, transaction))
        {
            await WriteLogIntoTableAsync(connection, transaction, rows, current, cancellationToken);
            await rows.FinishAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
        // A new, empty overlay: a batch reading meanwhile goes on with the one it has, which the users table it reads
        // (as it was before this commit or after it) agrees with.
        lock (_overlayLock)
            (_overlay, _logBytes, _version) = ([], 0, versions.After);
        SessionizationMetrics.StateLogApplyDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    /// <summary>
    /// Writes the log's latest after-images into the users table and empties the log, inside <paramref name="transaction"/>,
    /// which has counted the log's version: the log is this process's overlay when <paramref name="current"/>, else read.
    /// </summary>
    private async Task WriteLogIntoTableAsync(DbConnection connection, DbTransaction transaction, IRowWriter rows, bool current, CancellationToken cancellationToken)
    {
        Dictionary<long, EventTimeStateRow?>? log = null;
        if (current)
        {
            lock (_overlayLock)
                log = _overlay;
        }

        log ??= (await ReadLogAsync(connection, transaction, cancellationToken)).Rows;
        if (log.Count == 0)
            return;
        foreach (var user in log.Keys.Order())
        {
            if (log[user] is { } row)
                await rows.UpsertAsync(row, cancellationToken);
            else
                await rows.DeleteAsync(user, cancellationToken);
        }

        await using var empty = Command(connection, transaction, $"DELETE FROM {_log}");
        await empty.ExecuteNonQueryAsync(cancellationToken);
    }

    private IRowWriter RowWriter(DbConnection connection, DbTransaction transaction) =>
        _sqlite ? new SqliteRowWriter((SqliteConnection)connection, _users, _due) : new CommandRowWriter(connection, transaction, _users, _due);

    /// <summary>The current rows of <paramref name="users"/>; a user without one has kept nothing.</summary>
    public async Task<Dictionary<long, EventTimeStateRow>> LoadUsersAsync(IReadOnlyCollection<long> users, CancellationToken cancellationToken = default)
    {
        var states = new Dictionary<long, EventTimeStateRow>(users.Count);
        await using var connection = Open();
        var overlay = await OverlayAsync(connection, cancellationToken);
        var fromTable = new List<long>(users.Count);
        foreach (var user in users)
        {
            if (!overlay.TryGetValue(user, out var row))
                fromTable.Add(user);
            else if (row is { } held)
                states[user] = held;
        }

        fromTable.Sort();
        if (_sqlite)
        {
            ReadSqliteRows((SqliteConnection)connection, fromTable, states);
            return states;
        }

        // The ids go as one array per query: a parameter each would cost a lookup by name among all of the statement's
        // parameters, for every one of them.
        await using var command = Command(connection, null, $"SELECT user_id, deadline, state FROM {_users} WHERE user_id = ANY(@ids)");
        var parameter = Parameter(command, "@ids", Array.Empty<long>());
        foreach (var chunk in fromTable.Chunk(UsersPerQuery))
        {
            parameter.Value = chunk;
            await ReadRowsAsync(command, states, cancellationToken);
        }

        return states;
    }

    /// <summary>
    /// The rows of <paramref name="users"/> (in id order, so that neighbours share pages) on SQLite, which looks each up
    /// through one prepared statement: in process there is no round trip to save, and an <c>IN</c> over a JSON array of
    /// the ids, which first builds a temporary index of them, took about twice as long (10,000 users of a million).
    /// </summary>
    private void ReadSqliteRows(SqliteConnection connection, List<long> users, Dictionary<long, EventTimeStateRow> rows)
    {
        var db = connection.Handle!;
        var slab = new StateSlab();
        CheckSqlite(db, raw.sqlite3_prepare_v2(db, $"SELECT deadline, state FROM {_users} WHERE user_id = ?1", out var lookup));
        using (lookup)
        {
            // One read transaction for all of them: each statement outside one would take and drop SQLite's file locks.
            // A reader of a WAL database waits for no writer, so the busy retries of Microsoft.Data.Sqlite, which these
            // calls go around, have nothing to retry here (the store's first connection already recovered the WAL).
            CheckSqlite(db, raw.sqlite3_exec(db, "BEGIN"));
            try
            {
                foreach (var user in users)
                {
                    CheckSqlite(db, raw.sqlite3_bind_int64(lookup, 1, user));
                    var result = raw.sqlite3_step(lookup);
                    if (result == raw.SQLITE_ROW)
                        rows[user] = new EventTimeStateRow(user, raw.sqlite3_column_int64(lookup, 0), slab.Add(raw.sqlite3_column_blob(lookup, 1)));
                    raw.sqlite3_reset(lookup);
                    if (result is not (raw.SQLITE_ROW or raw.SQLITE_DONE))
                        CheckSqlite(db, result);
                }
            }
            finally
            {
                // It only read: ending it keeps or loses nothing, and the pooled connection goes back without one open.
                raw.sqlite3_exec(db, "COMMIT");
            }
        }
    }

    /// <summary>Every user with a row and the row's deadline (the log's rows over the table's): a scan of the whole table.</summary>
    public async Task<DeadlineIndex> LoadDeadlinesAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = Open();
        var overlay = await OverlayAsync(connection, cancellationToken);
        var users = new List<long>();
        var deadlines = new List<long>();
        await using (var command = Command(connection, null, $"SELECT user_id, deadline FROM {_users}"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                var user = reader.GetInt64(0);
                if (overlay.ContainsKey(user))
                    continue;
                users.Add(user);
                deadlines.Add(reader.GetInt64(1));
            }
        }

        foreach (var (user, row) in overlay)
        {
            if (row is { Deadline: { } deadline })
            {
                users.Add(user);
                deadlines.Add(deadline);
            }
        }

        return DeadlineIndex.Of([.. users], [.. deadlines]);
    }

    /// <summary>Throws what Microsoft.Data.Sqlite would for a failed call of SQLite's own API, with SQLite's message.</summary>
    private static void CheckSqlite(sqlite3 db, int result)
    {
        if (result is not (raw.SQLITE_OK or raw.SQLITE_DONE))
            throw new SqliteException($"SQLite Error {result}: '{raw.sqlite3_errmsg(db).utf8_to_string()}'.", result);
    }

    /// <summary>The current rows whose deadline the watermark <paramref name="watermark"/> reached.</summary>
    public async Task<Dictionary<long, EventTimeStateRow>> LoadDueAsync(long watermark, CancellationToken cancellationToken = default)
    {
        var states = new Dictionary<long, EventTimeStateRow>();
        await using var connection = Open();
        var overlay = await OverlayAsync(connection, cancellationToken);
        foreach (var (user, row) in overlay)
        {
            if (row is { } held && held.Deadline <= watermark)
                states[user] = held;
        }

        await using var command = connection.CreateCommand();
        // An entry is due when its row still has its deadline: entries made stale by a later write find no row.
        command.CommandText = $"""
            SELECT u.user_id, u.deadline, u.state FROM {_due} d JOIN {_users} u ON u.user_id = d.user_id AND u.deadline = d.deadline
            WHERE d.deadline <= @watermark
            """;
        Parameter(command, "@watermark", watermark);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            // A user in the log has its current state there: its row in the table is an older one.
            var user = reader.GetInt64(0);
            if (!overlay.ContainsKey(user))
                states[user] = new EventTimeStateRow(user, reader.GetInt64(1), (byte[])reader.GetValue(2));
        }

        return states;
    }

    /// <summary>
    /// The users whose current deadline the watermark <paramref name="watermark"/> may have reached, without their
    /// states: every one whose deadline it did reach, and perhaps some whose deadline moved on since, which the caller
    /// tells apart by their rows (a row's deadline is current); one may be named twice. Checking each entry against its
    /// row here would look up every due user's row, which a worker's batch mostly holds already (a quarter of a million
    /// due users: about 200 ms against 10).
    /// </summary>
    public async Task<List<long>> LoadDueIdsAsync(long watermark, CancellationToken cancellationToken = default)
    {
        var users = new List<long>();
        await using var connection = Open();
        var overlay = await OverlayAsync(connection, cancellationToken);
        foreach (var (user, row) in overlay)
        {
            if (row?.Deadline <= watermark)
                users.Add(user);
        }

        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT user_id FROM {_due} WHERE deadline <= @watermark";
        Parameter(command, "@watermark", watermark);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var user = reader.GetInt64(0);
            if (!overlay.ContainsKey(user))
                users.Add(user);
        }

        return users;
    }

    /// <summary>Takes every user back to how it stood before <paramref name="batch"/>; returns how many users that reset.</summary>
    public async Task<long> RewindAsync(long batch, CancellationToken cancellationToken = default)
    {
        await WhenAppliedAsync();
        await using var connection = await OpenWriterAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var (users, logDropped) = await TakeBackAsync(connection, transaction, batch, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        if (logDropped)
        {
            lock (_overlayLock)
                _overlay = null;
        }

        return users;
    }

    /// <summary>Drops the before-images of the batches before <paramref name="batch"/>: no checkpoint from it on can need them.</summary>
    public async Task PruneBeforeAsync(long batch, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenWriterAsync(cancellationToken);
        await using var command = Command(connection, null, $"DELETE FROM {_undo} WHERE batch < @before");
        Parameter(command, "@before", batch);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Drops the log records of <paramref name="batch"/> and every later batch and puts back their before-images, the
    /// latest first; returns how many users that reset, and whether the log changed.
    /// </summary>
    private async Task<(long Users, bool LogDropped)> TakeBackAsync(DbConnection connection, DbTransaction transaction, long batch, CancellationToken cancellationToken)
    {
        bool logDropped;
        await using (var dropLog = Command(connection, transaction, $"DELETE FROM {_log} WHERE batch >= @from"))
        {
            Parameter(dropLog, "@from", batch);
            logDropped = await dropLog.ExecuteNonQueryAsync(cancellationToken) > 0;
        }

        if (logDropped)
            await CountLogVersionAsync(connection, transaction, cancellationToken);

        // The parts are listed first and read one at a time: a rewind over many large batches holds one part, not all.
        var parts = new List<(long Batch, int Part)>();
        await using (var list = Command(connection, transaction, $"SELECT batch, part FROM {_undo} WHERE batch >= @from ORDER BY batch DESC, part DESC"))
        {
            Parameter(list, "@from", batch);
            await using var reader = await list.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
                parts.Add((reader.GetInt64(0), reader.GetInt32(1)));
        }

        if (parts.Count == 0)
            return (0, logDropped);
        await using var read = Command(connection, transaction, $"SELECT before_images FROM {_undo} WHERE batch = @batch AND part = @part");
        var (readBatch, readPart) = (Parameter(read, "@batch", 0L), Parameter(read, "@part", 0));
        var users = new HashSet<long>();
        await using var rows = RowWriter(connection, transaction);
        foreach (var (partBatch, partNumber) in parts)
        {
            (readBatch.Value, readPart.Value) = (partBatch, partNumber);
            var part = (byte[])(await read.ExecuteScalarAsync(cancellationToken))!;
            foreach (var (user, had) in ImageWriter.Read(part))
            {
                users.Add(user);
                if (had is { } row)
                    await rows.UpsertAsync(row, cancellationToken);
                else
                    await rows.DeleteAsync(user, cancellationToken);
            }
        }

        await rows.FinishAsync(cancellationToken);
        await using var drop = Command(connection, transaction, $"DELETE FROM {_undo} WHERE batch >= @from");
        Parameter(drop, "@from", batch);
        await drop.ExecuteNonQueryAsync(cancellationToken);
        return (users.Count, logDropped);
    }

    /// <summary>Whether <paramref name="before"/> is the current row of <paramref name="user"/> as far as the log tells.</summary>
    private bool Holds(long user, EventTimeStateRow? before)
    {
        lock (_overlayLock)
        {
            if (_overlay is null || !_overlay.TryGetValue(user, out var current))
                return true;
            return current is not { } held ? before is null
                : before is { } had && held.Deadline == had.Deadline && (held.State.Equals(had.State) || held.State.Span.SequenceEqual(had.State.Span));
        }
    }

    /// <summary>The log's latest after-image per user, read again when another transaction changed the log since.</summary>
    private async Task<Dictionary<long, EventTimeStateRow?>> OverlayAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        // The version is read before the log: a log newer than its version is read again next time, never the reverse.
        await using var command = Command(connection, null, $"SELECT log_version FROM {_meta} WHERE id = 1");
        var version = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        lock (_overlayLock)
        {
            if (_overlay is not null && _version == version)
                return _overlay;
        }

        var (rows, bytes) = await ReadLogAsync(connection, null, cancellationToken);
        lock (_overlayLock)
            (_overlay, _logBytes, _version) = (rows, bytes, version);
        return rows;
    }

    private async Task<(Dictionary<long, EventTimeStateRow?> Rows, long Bytes)> ReadLogAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken)
    {
        var rows = new Dictionary<long, EventTimeStateRow?>();
        long bytes = 0;
        await using var command = Command(connection, transaction, $"SELECT after_images FROM {_log} ORDER BY batch, part");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var part = (byte[])reader.GetValue(0);
            bytes += part.Length;
            foreach (var (user, row) in ImageWriter.Read(part))
                rows[user] = row;
        }

        return (rows, bytes);
    }

    /// <summary>Counts the log's version up in <paramref name="transaction"/>: the version before and after.</summary>
    private async Task<(long Before, long After)> CountLogVersionAsync(DbConnection connection, DbTransaction transaction, CancellationToken cancellationToken)
    {
        await using var command = Command(connection, transaction, $"UPDATE {_meta} SET log_version = log_version + 1 WHERE id = 1 RETURNING log_version");
        var after = Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        return (after - 1, after);
    }

    /// <summary>
    /// The first layout kept every user's rows of every batch in one table; it is not read, and not silently
    /// replaced: the state is rebuilt from the visits by rewinding to batch 0 once the old table is gone.
    /// </summary>
    private static string TableOfEarlierLayout(string? pipelineId) => "event_time_states" + Suffix(pipelineId);

    private void RefuseEarlierLayout(DbConnection connection, string table, string where)
    {
        if (Exists(connection, "table", table))
        {
            throw new InvalidDataException(
                $"{where} holds event-time state in an earlier layout (table {table}): drop that table, then rebuild the state from the visits with `run --from-batch 0`");
        }
    }

    /// <summary>Whether the database has a <paramref name="kind"/> (<c>table</c> or <c>index</c>) of this name.</summary>
    private bool Exists(DbConnection connection, string kind, string name)
    {
        using var command = Command(connection, null, (_sqlite, kind) switch
        {
            (true, _) => "SELECT count(*) FROM sqlite_master WHERE type = @kind AND name = @name",
            (false, "index") => "SELECT count(*) FROM pg_indexes WHERE indexname = @name",
            _ => "SELECT count(*) FROM information_schema.tables WHERE table_name = @name",
        });
        if (_sqlite)
            Parameter(command, "@kind", kind);
        Parameter(command, "@name", name);
        return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) > 0;
    }

    private static async Task ReadRowsAsync(DbCommand command, Dictionary<long, EventTimeStateRow> rows, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var user = reader.GetInt64(0);
            rows[user] = new EventTimeStateRow(user, reader.GetInt64(1), (byte[])reader.GetValue(2));
        }
    }

    private DbConnection Open()
    {
        var connection = _connect();
        connection.Open();
        if (_sqlite)
        {
            // A batch touches users all over the table: a page cache of the default 2 MB, and reads through
            // syscalls, make each lookup and update a round of misses once the table outgrows it.
            using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA cache_size=-131072; PRAGMA mmap_size=1073741824;";
            pragma.ExecuteNonQuery();
        }

        return connection;
    }

    private async Task<DbConnection> OpenWriterAsync(CancellationToken cancellationToken)
    {
        var connection = Open();
        if (_sqlite)
        {
            await using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA synchronous=FULL;";
            await pragma.ExecuteNonQueryAsync(cancellationToken);
        }

        return connection;
    }

    private static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }

    private static DbParameter Parameter(DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
        return parameter;
    }

    /// <summary>A prepared statement that writes one user's row: its id, deadline and state.</summary>
    private sealed class RowStatement : IAsyncDisposable
    {
        private readonly DbCommand _command;
        private readonly DbParameter _user;
        private readonly DbParameter _deadline;
        private readonly DbParameter _state;

        public RowStatement(DbConnection connection, DbTransaction transaction, string sql)
        {
            _command = Command(connection, transaction, sql);
            (_user, _deadline, _state) = (Parameter(_command, "@user", 0L), Parameter(_command, "@deadline", 0L), Parameter(_command, "@state", Array.Empty<byte>()));
        }

        /// <summary>Writes <paramref name="row"/>, which keeps something (has a deadline); returns the rows changed.</summary>
        public Task<int> ExecuteAsync(EventTimeStateRow row, CancellationToken cancellationToken)
        {
            (_user.Value, _deadline.Value, _state.Value) = (row.UserId, row.Deadline!.Value, row.StateArray());
            return _command.ExecuteNonQueryAsync(cancellationToken);
        }

        public ValueTask DisposeAsync() => _command.DisposeAsync();
    }

    /// <summary>
    /// Writes users' rows into the users table inside a transaction, each row that keeps something with its due entry;
    /// each call returns the rows it changed.
    /// </summary>
    private interface IRowWriter : IAsyncDisposable
    {
        /// <summary>Writes <paramref name="row"/>, which keeps something (has a deadline), whether or not its user has a row.</summary>
        ValueTask<int> UpsertAsync(EventTimeStateRow row, CancellationToken cancellationToken);

        ValueTask<int> UpdateAsync(EventTimeStateRow row, CancellationToken cancellationToken);

        ValueTask<int> InsertAsync(EventTimeStateRow row, CancellationToken cancellationToken);

        ValueTask<int> DeleteAsync(long user, CancellationToken cancellationToken);

        /// <summary>Writes what the writer held back (the due entries, on SQLite): called before the transaction commits.</summary>
        ValueTask FinishAsync(CancellationToken cancellationToken);
    }

    /// <summary>Rows written through ADO.NET commands (PostgreSQL).</summary>
    private sealed class CommandRowWriter : IRowWriter
    {
        private readonly RowStatement _upsert;
        private readonly RowStatement _update;
        private readonly RowStatement _insert;
        private readonly DbCommand _delete;
        private readonly DbParameter _deleteUser;
        private readonly DbCommand _due;
        private readonly DbParameter _dueDeadline;
        private readonly DbParameter _dueUser;

        public CommandRowWriter(DbConnection connection, DbTransaction transaction, string users, string due)
        {
            _upsert = new RowStatement(
                connection, transaction, $"INSERT INTO {users} (user_id, deadline, state) VALUES (@user, @deadline, @state) ON CONFLICT (user_id) DO UPDATE SET deadline = excluded.deadline, state = excluded.state");
            _update = new RowStatement(connection, transaction, $"UPDATE {users} SET deadline = @deadline, state = @state WHERE user_id = @user");
            _insert = new RowStatement(connection, transaction, $"INSERT INTO {users} (user_id, deadline, state) VALUES (@user, @deadline, @state)");
            _delete = Command(connection, transaction, $"DELETE FROM {users} WHERE user_id = @user");
            _deleteUser = Parameter(_delete, "@user", 0L);
            _due = Command(connection, transaction, $"INSERT INTO {due} (deadline, user_id) VALUES (@deadline, @user) ON CONFLICT DO NOTHING");
            (_dueDeadline, _dueUser) = (Parameter(_due, "@deadline", 0L), Parameter(_due, "@user", 0L));
        }

        public ValueTask<int> UpsertAsync(EventTimeStateRow row, CancellationToken cancellationToken) => WriteAsync(_upsert, row, cancellationToken);

        public ValueTask<int> UpdateAsync(EventTimeStateRow row, CancellationToken cancellationToken) => WriteAsync(_update, row, cancellationToken);

        public ValueTask<int> InsertAsync(EventTimeStateRow row, CancellationToken cancellationToken) => WriteAsync(_insert, row, cancellationToken);

        private async ValueTask<int> WriteAsync(RowStatement statement, EventTimeStateRow row, CancellationToken cancellationToken)
        {
            var changed = await statement.ExecuteAsync(row, cancellationToken);
            if (changed == 1)
            {
                (_dueDeadline.Value, _dueUser.Value) = (row.Deadline!.Value, row.UserId);
                await _due.ExecuteNonQueryAsync(cancellationToken);
            }

            return changed;
        }

        public async ValueTask<int> DeleteAsync(long user, CancellationToken cancellationToken)
        {
            _deleteUser.Value = user;
            return await _delete.ExecuteNonQueryAsync(cancellationToken);
        }

        public ValueTask FinishAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public async ValueTask DisposeAsync()
        {
            await _upsert.DisposeAsync();
            await _update.DisposeAsync();
            await _insert.DisposeAsync();
            await _delete.DisposeAsync();
            await _due.DisposeAsync();
        }
    }

    /// <summary>
    /// Rows written through SQLite's own prepared statements, bound by position: applying the log writes a row per
    /// user, and the ADO.NET layer adds a data reader, a parameter lookup by name and a task to every row. Measured on
    /// 70,000-user batches: through ADO.NET the rows took about 200 ms longer to write, this way 8-60 ms.
    /// </summary>
    private sealed class SqliteRowWriter : IRowWriter
    {
        private readonly sqlite3 _db;
        private readonly IntPtr _dbHandle;
        private readonly sqlite3_stmt _upsert;
        private readonly sqlite3_stmt _update;
        private readonly sqlite3_stmt _insert;
        private readonly sqlite3_stmt _delete;
        private readonly sqlite3_stmt _due;
        private readonly List<long> _dueDeadlines = [];
        private readonly List<long> _dueUsers = [];

        public SqliteRowWriter(SqliteConnection connection, string users, string due)
        {
            _db = connection.Handle!;
            _dbHandle = _db.DangerousGetHandle();
            _upsert = Prepare($"INSERT INTO {users} (user_id, deadline, state) VALUES (?1, ?2, ?3) ON CONFLICT (user_id) DO UPDATE SET deadline = excluded.deadline, state = excluded.state");
            _update = Prepare($"UPDATE {users} SET deadline = ?2, state = ?3 WHERE user_id = ?1");
            _insert = Prepare($"INSERT INTO {users} (user_id, deadline, state) VALUES (?1, ?2, ?3)");
            _delete = Prepare($"DELETE FROM {users} WHERE user_id = ?1");
            _due = Prepare($"INSERT INTO {due} (deadline, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING");
        }

        public ValueTask<int> UpsertAsync(EventTimeStateRow row, CancellationToken cancellationToken) => new(Write(_upsert, row));

        public ValueTask<int> UpdateAsync(EventTimeStateRow row, CancellationToken cancellationToken) => new(Write(_update, row));

        public ValueTask<int> InsertAsync(EventTimeStateRow row, CancellationToken cancellationToken) => new(Write(_insert, row));

        public ValueTask<int> DeleteAsync(long user, CancellationToken cancellationToken)
        {
            Check(SqliteNative.BindInt64(_delete.DangerousGetHandle(), 1, user));
            return new(Step(_delete.DangerousGetHandle()));
        }

        public ValueTask DisposeAsync()
        {
            _upsert.Dispose();
            _update.Dispose();
            _insert.Dispose();
            _delete.Dispose();
            _due.Dispose();
            return ValueTask.CompletedTask;
        }

        private int Write(sqlite3_stmt statement, EventTimeStateRow row)
        {
            var handle = statement.DangerousGetHandle();
            Check(SqliteNative.BindInt64(handle, 1, row.UserId));
            Check(SqliteNative.BindInt64(handle, 2, row.Deadline!.Value));
            Check(SqliteNative.BindBlob(handle, 3, row.State.Span));
            var changed = Step(handle);
            if (changed == 1)
            {
                _dueDeadlines.Add(row.Deadline.Value);
                _dueUsers.Add(row.UserId);
            }

            return changed;
        }

        /// <summary>
        /// Writes the due entries of the rows written, in deadline order. The rows come in user order, which scatters
        /// their deadlines over the due table: an entry each as its row was written cost a descent to a different page,
        /// and took longer than writing the rows themselves (about 300 ms of a worker's 370,000-user batch). In deadline
        /// order each entry lands beside the one before it.
        /// </summary>
        public ValueTask FinishAsync(CancellationToken cancellationToken)
        {
            var deadlines = CollectionsMarshal.AsSpan(_dueDeadlines);
            var users = CollectionsMarshal.AsSpan(_dueUsers);
            deadlines.Sort(users);
            var due = _due.DangerousGetHandle();
            for (var i = 0; i < deadlines.Length; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Check(SqliteNative.BindInt64(due, 1, deadlines[i]));
                Check(SqliteNative.BindInt64(due, 2, users[i]));
                Step(due);
            }

            _dueDeadlines.Clear();
            _dueUsers.Clear();
            return ValueTask.CompletedTask;
        }

        private int Step(IntPtr statement)
        {
            var result = SqliteNative.Step(statement);
            SqliteNative.Reset(statement);
            if (result != raw.SQLITE_DONE)
                Check(result);
            return SqliteNative.Changes(_dbHandle);
        }

        private sqlite3_stmt Prepare(string sql)
        {
            Check(raw.sqlite3_prepare_v2(_db, sql, out var statement));
            return statement;
        }

        private void Check(int result) => CheckSqlite(_db, result);
    }

    /// <summary>
    /// A batch's record of users' rows (before-images in the undo table, after-images in the log), written in parts as
    /// they fill. Each is the user id, the length of its state (-1: no row), and if there is a row its deadline and
    /// state: little-endian, one after the other.
    /// </summary>
    private sealed class ImageWriter(DbConnection connection, DbTransaction transaction, string table, string column, long batch)
    {
        // Sized for a whole part at once: grown by doubling, the buffer would allocate about twice a part over again.
        private readonly MemoryStream _buffer = new(ImagePartBytes + (64 << 10));
        private int _part;
        private int _users;

        /// <summary>The parts' bytes written so far.</summary>
        public long Bytes { get; private set; }

        public async Task AddAsync(long user, EventTimeStateRow? had, CancellationToken cancellationToken)
        {
            Span<byte> head = stackalloc byte[20];
            BinaryPrimitives.WriteInt64LittleEndian(head, user);
            BinaryPrimitives.WriteInt32LittleEndian(head[8..], had?.State.Length ?? -1);
            BinaryPrimitives.WriteInt64LittleEndian(head[12..], had?.Deadline ?? 0);
            _buffer.Write(had is null ? head[..12] : head);
            if (had is { } row)
                _buffer.Write(row.State.Span);
            _users++;
            if (_buffer.Length >= ImagePartBytes)
                await FlushAsync(cancellationToken);
        }

        public async Task FlushAsync(CancellationToken cancellationToken)
        {
            if (_users == 0)
                return;
            await using var insert = Command(connection, transaction, $"INSERT INTO {table} (batch, part, users, {column}) VALUES (@batch, @part, @users, @images)");
            Parameter(insert, "@batch", batch);
            Parameter(insert, "@part", _part++);
            Parameter(insert, "@users", _users);
            Parameter(insert, "@images", _buffer.ToArray());
            await insert.ExecuteNonQueryAsync(cancellationToken);
            Bytes += _buffer.Length;
            _buffer.SetLength(0);
            _users = 0;
        }

        public static IEnumerable<(long User, EventTimeStateRow? Had)> Read(byte[] part)
        {
            var at = 0;
            while (at < part.Length)
            {
                var user = BinaryPrimitives.ReadInt64LittleEndian(part.AsSpan(at));
                var length = BinaryPrimitives.ReadInt32LittleEndian(part.AsSpan(at + 8));
                at += 12;
                if (length < 0)
                {
                    yield return (user, null);
                    continue;
                }

                var deadline = BinaryPrimitives.ReadInt64LittleEndian(part.AsSpan(at));
                yield return (user, new EventTimeStateRow(user, deadline, part.AsMemory(at + 8, length)));
                at += 8 + length;
            }
        }
    }
}

/// <summary>
/// A user's event-time state as stored: its encoded form and its deadline (null: it keeps nothing, and has no row). A
/// value whose bytes are usually part of a <see cref="StateSlab"/>: a batch keeps one for every user it stepped.
/// </summary>
public readonly record struct EventTimeStateRow(long UserId, long? Deadline, ReadOnlyMemory<byte> State)
{
    /// <summary>A state with no sessions has no deadline, and one with sessions always has one.</summary>
    public bool KeepsNothing => Deadline is null;

    /// <summary>The row of <paramref name="state"/>, its encoded form kept in <paramref name="slab"/>.</summary>
    public static EventTimeStateRow From(EventTimeUserState state, EventTimeSessionPolicy policy, StateSlab slab) =>
        new(state.UserId, policy.NextDeadline(state), UserStateCodec.Encode(state, slab));

    /// <summary>The state itself; with <paramref name="pages"/>, equal page names of different users become one string.</summary>
    public EventTimeUserState Decode(SharedStrings? pages = null) => UserStateCodec.DecodeEventTime(State.Span, pages);

    /// <summary>The encoded state as one array of its own, for a database parameter.</summary>
    public byte[] StateArray() =>
        MemoryMarshal.TryGetArray(State, out var whole) && whole.Offset == 0 && whole.Count == whole.Array!.Length ? whole.Array : State.ToArray();
}

/// <summary>A user's state after a batch, and the row it replaces (null: the user had none).</summary>
public readonly record struct EventTimeStateChange(EventTimeStateRow After, EventTimeStateRow? Before);

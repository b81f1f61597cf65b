using System.Buffers.Binary;
using System.Data.Common;
using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Npgsql;
using Sessionization.Domain;
using SQLitePCL;

namespace Sessionization.Persistence.UserState;

/// <summary>
/// The durable state of event-time sessions: one row per user with its current state (its sessions still open or still
/// open to correction) and the watermark at which it next needs a batch without visits (its deadline), keyed by user
/// id. A batch reads only the users it touches: those with visits, by id, and those whose deadline its watermark
/// reached, through an index on the deadline, so its cost does not grow with the sessions that stay open untouched. A
/// batch overwrites its users' rows in place and, in the same transaction, keeps their rows as they stood before it
/// (before-images) in one undo record per batch: a rewind to a retained checkpoint, or a replay of a batch a crash
/// interrupted, puts those back, newest batch first. Pruning drops the undo of batches no retained checkpoint can
/// reach. A user that keeps nothing has no row.
/// </summary>
public sealed class EventTimeStateStore
{
    private const int UsersPerQuery = 10_000;

    /// <summary>Before-images are stored in parts of about this size, so no single value grows with the batch.</summary>
    private const int UndoPartBytes = 8 << 20;

    private readonly Func<DbConnection> _connect;
    private readonly bool _sqlite;
    private readonly string _users;
    private readonly string _undo;

    private EventTimeStateStore(Func<DbConnection> connect, bool sqlite, string? pipelineId, string where)
    {
        _connect = connect;
        _sqlite = sqlite;
        (_users, _undo) = TablesFor(pipelineId);
        var bytes = sqlite ? "BLOB" : "BYTEA";
        using var connection = Open();
        RefuseEarlierLayout(connection, TableOfEarlierLayout(pipelineId), where);
        using var command = connection.CreateCommand();
        // On SQLite an INTEGER PRIMARY KEY is the row id: the user's row is found and overwritten in its one b-tree.
        command.CommandText = $"""
            CREATE TABLE IF NOT EXISTS {_users} (
                user_id {(sqlite ? "INTEGER" : "BIGINT")} PRIMARY KEY, deadline BIGINT NOT NULL, state {bytes} NOT NULL);
            CREATE INDEX IF NOT EXISTS {_users}_due ON {_users} (deadline);
            CREATE TABLE IF NOT EXISTS {_undo} (
                batch BIGINT NOT NULL, part INTEGER NOT NULL, users INTEGER NOT NULL, before_images {bytes} NOT NULL,
                PRIMARY KEY (batch, part));
            """;
        command.ExecuteNonQuery();
    }

    /// <summary>An SQLite file of its own (WAL, synchronous=FULL).</summary>
    public static EventTimeStateStore Sqlite(string path, TimeSpan busyTimeout, string? pipelineId = null)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = (int)Math.Ceiling(busyTimeout.TotalSeconds) }.ToString();
        using (var wal = new SqliteConnection(connectionString))
        {
            wal.Open();
            using var pragma = wal.CreateCommand();
            pragma.CommandText = "PRAGMA journal_mode=WAL;";
            pragma.ExecuteNonQuery();
        }

        return new EventTimeStateStore(() => new SqliteConnection(connectionString), sqlite: true, pipelineId, path);
    }

    /// <summary>A table in the PostgreSQL database that also holds the coordinator's journal.</summary>
    public static EventTimeStateStore PostgreSql(string connectionString, string? pipelineId = null) =>
        new(() => new NpgsqlConnection(connectionString), sqlite: false, pipelineId, "the PostgreSQL database");

    /// <summary>The users' current states, and the before-images rewinds put back; a table pair per pipeline.</summary>
    public static (string Users, string Undo) TablesFor(string? pipelineId)
    {
        var suffix = Suffix(pipelineId);
        return ("event_time_users" + suffix, "event_time_undo" + suffix);
    }

    private static string Suffix(string? pipelineId) => pipelineId is null ? "" : "_" + Guid.Parse(pipelineId).ToString("N");

    /// <summary>
    /// Records the users' states after <paramref name="batch"/> in one transaction, each with the row it replaces as the
    /// batch's before-image; a user whose state keeps nothing loses its row. Saving a batch again (a replay) first takes
    /// back what was saved for it and any later batch, so the result is the same as saving it once; the caller reads
    /// the rows it replaces after taking the batch back (<see cref="RewindAsync"/>), so they are what this puts back. The
    /// changes may still be coming while it saves; if they end in an error, nothing is saved.
    /// </summary>
    public async Task SaveBatchAsync(long batch, IAsyncEnumerable<EventTimeStateChange> changes, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenWriterAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await TakeBackAsync(connection, transaction, batch, cancellationToken);
        await using var rows = _sqlite ? (IRowWriter)new SqliteRowWriter((SqliteConnection)connection, _users) : new CommandRowWriter(connection, transaction, _users);
        var undo = new UndoWriter(this, connection, transaction, batch);

        await foreach (var (row, before) in changes)
        {
            // A user that keeps nothing and had no row is unchanged: most users a batch lets go are these.
            if (row.KeepsNothing && before is null)
                continue;
            await undo.AddAsync(row.UserId, before, cancellationToken);
            // A plain insert: a user said to have no row that has one fails here instead of losing its before-image.
            var changed = row.KeepsNothing ? await rows.DeleteAsync(row.UserId, cancellationToken)
                : before is not null ? await rows.UpdateAsync(row, cancellationToken)
                : await rows.InsertAsync(row, cancellationToken);
            if (changed != 1)
                throw new InvalidOperationException($"user {row.UserId}: batch {batch} was given a stored state the store does not have");
        }

        await undo.FlushAsync(cancellationToken);
        var committing = Stopwatch.GetTimestamp();
        await transaction.CommitAsync(cancellationToken);
        SessionizationMetrics.StoreFlushDuration.Record(Stopwatch.GetElapsedTime(committing).TotalSeconds, new KeyValuePair<string, object?>("store", "event-time"));
    }

    /// <summary>The current rows of <paramref name="users"/>; a user without one has kept nothing.</summary>
    public async Task<Dictionary<long, EventTimeStateRow>> LoadUsersAsync(IReadOnlyCollection<long> users, CancellationToken cancellationToken = default)
    {
        var states = new Dictionary<long, EventTimeStateRow>(users.Count);
        await using var connection = Open();
        // The ids go as one value per query (a JSON array on SQLite, an array on PostgreSQL): a parameter each would
        // cost a lookup by name among all of the statement's parameters, for every one of them.
        var ids = _sqlite ? "(SELECT value FROM json_each(@ids))" : "ANY(@ids)";
        await using var command = Command(connection, null, $"SELECT user_id, deadline, state FROM {_users} WHERE user_id {(_sqlite ? "IN" : "=")} {ids}");
        var parameter = Parameter(command, "@ids", _sqlite ? "[]" : Array.Empty<long>());
        foreach (var chunk in users.Order().Chunk(UsersPerQuery))
        {
            parameter.Value = _sqlite ? $"[{string.Join(',', chunk)}]" : chunk;
            await ReadRowsAsync(command, states, cancellationToken);
        }

        return states;
    }

    /// <summary>The current rows whose deadline the watermark <paramref name="watermark"/> reached.</summary>
    public async Task<Dictionary<long, EventTimeStateRow>> LoadDueAsync(long watermark, CancellationToken cancellationToken = default)
    {
        var states = new Dictionary<long, EventTimeStateRow>();
        await using var connection = Open();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT user_id, deadline, state FROM {_users} WHERE deadline <= @watermark";
        Parameter(command, "@watermark", watermark);
        await ReadRowsAsync(command, states, cancellationToken);
        return states;
    }

    /// <summary>The users whose current deadline the watermark <paramref name="watermark"/> reached, without their states.</summary>
    public async Task<List<long>> LoadDueIdsAsync(long watermark, CancellationToken cancellationToken = default)
    {
        var users = new List<long>();
        await using var connection = Open();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT user_id FROM {_users} WHERE deadline <= @watermark";
        Parameter(command, "@watermark", watermark);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            users.Add(reader.GetInt64(0));
        return users;
    }

    /// <summary>Takes every user back to how it stood before <paramref name="batch"/>; returns how many users that reset.</summary>
    public async Task<long> RewindAsync(long batch, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenWriterAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var users = await TakeBackAsync(connection, transaction, batch, cancellationToken);
        await transaction.CommitAsync(cancellationToken);
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

    /// <summary>Puts back the before-images of <paramref name="batch"/> and every later batch, the latest first.</summary>
    private async Task<long> TakeBackAsync(DbConnection connection, DbTransaction transaction, long batch, CancellationToken cancellationToken)
    {
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
            return 0;
        await using var read = Command(connection, transaction, $"SELECT before_images FROM {_undo} WHERE batch = @batch AND part = @part");
        var (readBatch, readPart) = (Parameter(read, "@batch", 0L), Parameter(read, "@part", 0));
        var users = new HashSet<long>();
        await using var restore = new RowStatement(
            connection, transaction, $"INSERT INTO {_users} (user_id, deadline, state) VALUES (@user, @deadline, @state) ON CONFLICT (user_id) DO UPDATE SET deadline = excluded.deadline, state = excluded.state");
        await using var delete = Command(connection, transaction, $"DELETE FROM {_users} WHERE user_id = @user");
        var deleteUser = Parameter(delete, "@user", 0L);
        foreach (var (partBatch, partNumber) in parts)
        {
            (readBatch.Value, readPart.Value) = (partBatch, partNumber);
            var part = (byte[])(await read.ExecuteScalarAsync(cancellationToken))!;
            foreach (var (user, had) in UndoWriter.Read(part))
            {
                users.Add(user);
                if (had is null)
                {
                    deleteUser.Value = user;
                    await delete.ExecuteNonQueryAsync(cancellationToken);
                }
                else
                {
                    await restore.ExecuteAsync(had, cancellationToken);
                }
            }
        }

        await using var drop = Command(connection, transaction, $"DELETE FROM {_undo} WHERE batch >= @from");
        Parameter(drop, "@from", batch);
        await drop.ExecuteNonQueryAsync(cancellationToken);
        return users.Count;
    }

    /// <summary>
    /// The first layout kept every user's rows of every batch in one table; it is not read, and not silently
    /// replaced: the state is rebuilt from the visits by rewinding to batch 0 once the old table is gone.
    /// </summary>
    private static string TableOfEarlierLayout(string? pipelineId) => "event_time_states" + Suffix(pipelineId);

    private void RefuseEarlierLayout(DbConnection connection, string table, string where)
    {
        using var command = connection.CreateCommand();
        command.CommandText = _sqlite
            ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = @name"
            : "SELECT count(*) FROM information_schema.tables WHERE table_name = @name";
        Parameter(command, "@name", table);
        if (Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) > 0)
        {
            throw new InvalidDataException(
                $"{where} holds event-time state in an earlier layout (table {table}): drop that table, then rebuild the state from the visits with `run --from-batch 0`");
        }
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
            (_user.Value, _deadline.Value, _state.Value) = (row.UserId, row.Deadline!.Value, row.State);
            return _command.ExecuteNonQueryAsync(cancellationToken);
        }

        public ValueTask DisposeAsync() => _command.DisposeAsync();
    }

    /// <summary>Writes the users' rows of one batch's save, inside its transaction; each call returns the rows it changed.</summary>
    private interface IRowWriter : IAsyncDisposable
    {
        ValueTask<int> UpdateAsync(EventTimeStateRow row, CancellationToken cancellationToken);

        ValueTask<int> InsertAsync(EventTimeStateRow row, CancellationToken cancellationToken);

        ValueTask<int> DeleteAsync(long user, CancellationToken cancellationToken);
    }

    /// <summary>Rows written through ADO.NET commands (PostgreSQL).</summary>
    private sealed class CommandRowWriter : IRowWriter
    {
        private readonly RowStatement _update;
        private readonly RowStatement _insert;
        private readonly DbCommand _delete;
        private readonly DbParameter _deleteUser;

        public CommandRowWriter(DbConnection connection, DbTransaction transaction, string users)
        {
            _update = new RowStatement(connection, transaction, $"UPDATE {users} SET deadline = @deadline, state = @state WHERE user_id = @user");
            _insert = new RowStatement(connection, transaction, $"INSERT INTO {users} (user_id, deadline, state) VALUES (@user, @deadline, @state)");
            _delete = Command(connection, transaction, $"DELETE FROM {users} WHERE user_id = @user");
            _deleteUser = Parameter(_delete, "@user", 0L);
        }

        public async ValueTask<int> UpdateAsync(EventTimeStateRow row, CancellationToken cancellationToken) => await _update.ExecuteAsync(row, cancellationToken);

        public async ValueTask<int> InsertAsync(EventTimeStateRow row, CancellationToken cancellationToken) => await _insert.ExecuteAsync(row, cancellationToken);

        public async ValueTask<int> DeleteAsync(long user, CancellationToken cancellationToken)
        {
            _deleteUser.Value = user;
            return await _delete.ExecuteNonQueryAsync(cancellationToken);
        }

        public async ValueTask DisposeAsync()
        {
            await _update.DisposeAsync();
            await _insert.DisposeAsync();
            await _delete.DisposeAsync();
        }
    }

    /// <summary>
    /// Rows written through SQLite's own prepared statements, bound by position: a save writes a row per user it
    /// changes, and the ADO.NET layer adds a data reader, a parameter lookup by name and a task to every row. Measured
    /// on 70,000-user batches: through ADO.NET the save ended about 200 ms after the users were stepped, this way within
    /// 8-60 ms of it.
    /// </summary>
    private sealed class SqliteRowWriter : IRowWriter
    {
        private readonly sqlite3 _db;
        private readonly sqlite3_stmt _update;
        private readonly sqlite3_stmt _insert;
        private readonly sqlite3_stmt _delete;

        public SqliteRowWriter(SqliteConnection connection, string users)
        {
            _db = connection.Handle!;
            _update = Prepare($"UPDATE {users} SET deadline = ?2, state = ?3 WHERE user_id = ?1");
            _insert = Prepare($"INSERT INTO {users} (user_id, deadline, state) VALUES (?1, ?2, ?3)");
            _delete = Prepare($"DELETE FROM {users} WHERE user_id = ?1");
        }

        public ValueTask<int> UpdateAsync(EventTimeStateRow row, CancellationToken cancellationToken) => new(Write(_update, row));

        public ValueTask<int> InsertAsync(EventTimeStateRow row, CancellationToken cancellationToken) => new(Write(_insert, row));

        public ValueTask<int> DeleteAsync(long user, CancellationToken cancellationToken)
        {
            Check(raw.sqlite3_bind_int64(_delete, 1, user));
            return new(Step(_delete));
        }

        public ValueTask DisposeAsync()
        {
            _update.Dispose();
            _insert.Dispose();
            _delete.Dispose();
            return ValueTask.CompletedTask;
        }

        private int Write(sqlite3_stmt statement, EventTimeStateRow row)
        {
            Check(raw.sqlite3_bind_int64(statement, 1, row.UserId));
            Check(raw.sqlite3_bind_int64(statement, 2, row.Deadline!.Value));
            Check(raw.sqlite3_bind_blob(statement, 3, row.State));
            return Step(statement);
        }

        private int Step(sqlite3_stmt statement)
        {
            var result = raw.sqlite3_step(statement);
            raw.sqlite3_reset(statement);
            if (result != raw.SQLITE_DONE)
                Check(result);
            return raw.sqlite3_changes(_db);
        }

        private sqlite3_stmt Prepare(string sql)
        {
            Check(raw.sqlite3_prepare_v2(_db, sql, out var statement));
            return statement;
        }

        private void Check(int result)
        {
            if (result is not (raw.SQLITE_OK or raw.SQLITE_DONE))
                throw new SqliteException($"SQLite Error {result}: '{raw.sqlite3_errmsg(_db).utf8_to_string()}'.", result);
        }
    }

    /// <summary>
    /// A batch's before-images, written in parts as they fill. Each is the user id, the length of its state (-1: the
    /// user had no row), and if it had one its deadline and state: little-endian, one after the other.
    /// </summary>
    private sealed class UndoWriter(EventTimeStateStore store, DbConnection connection, DbTransaction transaction, long batch)
    {
        // Sized for a whole part at once: grown by doubling, the buffer would allocate about twice a part over again.
        private readonly MemoryStream _buffer = new(UndoPartBytes + (64 << 10));
        private int _part;
        private int _users;

        public async Task AddAsync(long user, EventTimeStateRow? had, CancellationToken cancellationToken)
        {
            Span<byte> head = stackalloc byte[20];
            BinaryPrimitives.WriteInt64LittleEndian(head, user);
            BinaryPrimitives.WriteInt32LittleEndian(head[8..], had?.State.Length ?? -1);
            BinaryPrimitives.WriteInt64LittleEndian(head[12..], had?.Deadline ?? 0);
            _buffer.Write(had is null ? head[..12] : head);
            if (had is not null)
                _buffer.Write(had.State);
            _users++;
            if (_buffer.Length >= UndoPartBytes)
                await FlushAsync(cancellationToken);
        }

        public async Task FlushAsync(CancellationToken cancellationToken)
        {
            if (_users == 0)
                return;
            await using var insert = Command(connection, transaction, $"INSERT INTO {store._undo} (batch, part, users, before_images) VALUES (@batch, @part, @users, @images)");
            Parameter(insert, "@batch", batch);
            Parameter(insert, "@part", _part++);
            Parameter(insert, "@users", _users);
            Parameter(insert, "@images", _buffer.ToArray());
            await insert.ExecuteNonQueryAsync(cancellationToken);
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
                yield return (user, new EventTimeStateRow(user, deadline, part.AsSpan(at + 8, length).ToArray()));
                at += 8 + length;
            }
        }
    }
}

/// <summary>A user's event-time state as stored: its encoded form and its deadline (null: it keeps nothing, and has no row).</summary>
public sealed record EventTimeStateRow(long UserId, long? Deadline, byte[] State)
{
    /// <summary>A state with no sessions has no deadline, and one with sessions always has one.</summary>
    public bool KeepsNothing => Deadline is null;

    public static EventTimeStateRow From(EventTimeUserState state, EventTimeSessionPolicy policy) =>
        new(state.UserId, policy.NextDeadline(state), UserStateCodec.Encode(state));

    /// <summary>The state itself; with <paramref name="pages"/>, equal page names of different users become one string.</summary>
    public EventTimeUserState Decode(SharedStrings? pages = null) => UserStateCodec.DecodeEventTime(State, pages);
}

/// <summary>A user's state after a batch, and the row it replaces (null: the user had none).</summary>
public readonly record struct EventTimeStateChange(EventTimeStateRow After, EventTimeStateRow? Before);

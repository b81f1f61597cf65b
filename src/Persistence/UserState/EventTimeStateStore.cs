using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;
using Sessionization.Domain;

namespace Sessionization.Persistence.UserState;

/// <summary>
/// The durable state of event-time sessions: for each user, a row per batch that changed what it keeps (its
/// sessions still open or still open to correction), with the watermark at which it next needs a batch without
/// visits (its deadline). A batch reads only the users it touches: those with visits, by id, and those whose deadline
/// its watermark reached, through an index over the current rows, so its cost does not grow with the sessions that
/// stay open untouched. A newer row supersedes the user's older one but does not delete it: a rewind to a retained
/// checkpoint brings the older rows back, and pruning drops only rows no retained checkpoint can need. Every batch
/// first takes back what a crashed attempt of it saved: the indexes on <c>batch</c> and <c>superseded_in</c> keep that
/// to the rows of that batch, not a scan of every user's.
/// </summary>
public sealed class EventTimeStateStore
{
    private const int UsersPerQuery = 500;
    private readonly Func<DbConnection> _connect;
    private readonly bool _sqlite;
    private readonly string _table;

    private EventTimeStateStore(Func<DbConnection> connect, bool sqlite, string table)
    {
        _connect = connect;
        _sqlite = sqlite;
        _table = table;
        var bytes = sqlite ? "BLOB" : "BYTEA";
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            CREATE TABLE IF NOT EXISTS {table} (
                user_id BIGINT NOT NULL, batch BIGINT NOT NULL, deadline BIGINT, superseded_in BIGINT, state {bytes} NOT NULL,
                PRIMARY KEY (user_id, batch));
            CREATE INDEX IF NOT EXISTS {table}_due ON {table} (deadline) WHERE superseded_in IS NULL AND deadline IS NOT NULL;
            CREATE INDEX IF NOT EXISTS {table}_batch ON {table} (batch);
            CREATE INDEX IF NOT EXISTS {table}_superseded ON {table} (superseded_in) WHERE superseded_in IS NOT NULL;
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

        return new EventTimeStateStore(() => new SqliteConnection(connectionString), sqlite: true, TableFor(pipelineId));
    }

    /// <summary>A table in the PostgreSQL database that also holds the coordinator's journal.</summary>
    public static EventTimeStateStore PostgreSql(string connectionString, string? pipelineId = null) =>
        new(() => new NpgsqlConnection(connectionString), sqlite: false, TableFor(pipelineId));

    public static string TableFor(string? pipelineId) =>
        pipelineId is null ? "event_time_states" : "event_time_states_" + Guid.Parse(pipelineId).ToString("N");

    /// <summary>
    /// Records the users' states after <paramref name="batch"/> in one transaction; for a user whose state keeps
    /// nothing, what it kept is superseded and no new row is written. Saving a batch again (a replay) first takes back what was saved
    /// for it and any later batch, so the result is the same as saving it once.
    /// </summary>
    public async Task SaveBatchAsync(long batch, IReadOnlyCollection<EventTimeStateRow> rows, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenWriterAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await TakeBackAsync(connection, transaction, batch, cancellationToken);
        await using var supersede = Command(connection, transaction, $"UPDATE {_table} SET superseded_in = @batch WHERE user_id = @user AND superseded_in IS NULL");
        var supersedeUser = Parameter(supersede, "@user", 0L);
        Parameter(supersede, "@batch", batch);
        await using var insert = Command(connection, transaction, $"INSERT INTO {_table} (user_id, batch, deadline, superseded_in, state) VALUES (@user, @batch, @deadline, NULL, @state)");
        var insertUser = Parameter(insert, "@user", 0L);
        Parameter(insert, "@batch", batch);
        var deadline = Parameter(insert, "@deadline", DBNull.Value);
        var state = Parameter(insert, "@state", Array.Empty<byte>());
        foreach (var row in rows)
        {
            if (row.Supersedes)
            {
                supersedeUser.Value = row.UserId;
                await supersede.ExecuteNonQueryAsync(cancellationToken);
            }

            // A user that keeps nothing has no current row: superseding what it kept is the whole change. Most of a
            // batch's users without visits are these (their sessions closed and can no longer be reached).
            if (row.KeepsNothing)
                continue;
            insertUser.Value = row.UserId;
            deadline.Value = row.Deadline is { } d ? d : DBNull.Value;
            state.Value = row.State;
            await insert.ExecuteNonQueryAsync(cancellationToken);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>The current states of <paramref name="users"/>; a user without one has kept nothing.</summary>
    public async Task<Dictionary<long, EventTimeUserState>> LoadUsersAsync(IReadOnlyCollection<long> users, SharedStrings? pages = null, CancellationToken cancellationToken = default)
    {
        var states = new Dictionary<long, EventTimeUserState>(users.Count);
        await using var connection = Open();
        foreach (var chunk in users.Chunk(UsersPerQuery))
        {
            await using var command = connection.CreateCommand();
            var names = chunk.Select((_, i) => $"@u{i}").ToList();
            command.CommandText = $"SELECT user_id, state FROM {_table} WHERE superseded_in IS NULL AND user_id IN ({string.Join(", ", names)})";
            for (var i = 0; i < chunk.Length; i++)
                Parameter(command, names[i], chunk[i]);
            await ReadStatesAsync(command, states, pages, cancellationToken);
        }

        return states;
    }

    /// <summary>The current states whose deadline the watermark <paramref name="watermark"/> reached.</summary>
    public async Task<Dictionary<long, EventTimeUserState>> LoadDueAsync(long watermark, SharedStrings? pages = null, CancellationToken cancellationToken = default)
    {
        var states = new Dictionary<long, EventTimeUserState>();
        await using var connection = Open();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT user_id, state FROM {_table} WHERE superseded_in IS NULL AND deadline IS NOT NULL AND deadline <= @watermark";
        Parameter(command, "@watermark", watermark);
        await ReadStatesAsync(command, states, pages, cancellationToken);
        return states;
    }

    /// <summary>The users whose current deadline the watermark <paramref name="watermark"/> reached, without their states.</summary>
    public async Task<List<long>> LoadDueIdsAsync(long watermark, CancellationToken cancellationToken = default)
    {
        var users = new List<long>();
        await using var connection = Open();
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT user_id FROM {_table} WHERE superseded_in IS NULL AND deadline IS NOT NULL AND deadline <= @watermark";
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

    /// <summary>
    /// Drops what no checkpoint from <paramref name="batch"/> on can need: rows superseded before it, and current rows
    /// from before it that keep nothing (a user with no row keeps nothing too).
    /// </summary>
    public async Task PruneBeforeAsync(long batch, CancellationToken cancellationToken = default)
    {
        await using var connection = await OpenWriterAsync(cancellationToken);
        await using var command = Command(connection, null, $"DELETE FROM {_table} WHERE superseded_in < @before OR (superseded_in IS NULL AND batch < @before AND deadline IS NULL)");
        Parameter(command, "@before", batch);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<long> TakeBackAsync(DbConnection connection, DbTransaction transaction, long batch, CancellationToken cancellationToken)
    {
        await using var count = Command(connection, transaction, $"SELECT count(*) FROM (SELECT user_id FROM {_table} WHERE batch >= @from UNION SELECT user_id FROM {_table} WHERE superseded_in >= @from) AS reset");
        Parameter(count, "@from", batch);
        var users = Convert.ToInt64(await count.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
        await using var delete = Command(connection, transaction, $"DELETE FROM {_table} WHERE batch >= @from");
        Parameter(delete, "@from", batch);
        await delete.ExecuteNonQueryAsync(cancellationToken);
        await using var restore = Command(connection, transaction, $"UPDATE {_table} SET superseded_in = NULL WHERE superseded_in >= @from");
        Parameter(restore, "@from", batch);
        await restore.ExecuteNonQueryAsync(cancellationToken);
        return users;
    }

    private static async Task ReadStatesAsync(DbCommand command, Dictionary<long, EventTimeUserState> states, SharedStrings? pages, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            states[reader.GetInt64(0)] = UserStateCodec.DecodeEventTime((byte[])reader.GetValue(1), pages);
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
}

/// <summary>A user's event-time state to store: its encoded form and its deadline (null: it keeps nothing).</summary>
public sealed record EventTimeStateRow(long UserId, long? Deadline, byte[] State)
{
    /// <summary>A state with no sessions has no deadline, and one with sessions always has one.</summary>
    public bool KeepsNothing => Deadline is null;

    /// <summary>Whether the user has a current row to supersede; false only when the caller knows it has none (saves a lookup).</summary>
    public bool Supersedes { get; init; } = true;

    public static EventTimeStateRow From(EventTimeUserState state, EventTimeSessionPolicy policy) =>
        new(state.UserId, policy.NextDeadline(state), UserStateCodec.Encode(state));
}

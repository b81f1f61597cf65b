using System.Data.Common;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Sessionization.Persistence.UserState;

/// <summary>A user's durable session state as it stood after one batch.</summary>
public readonly record struct StoredUserState(long Batch, byte[] State);

/// <summary>Where the per-user session actors keep their state; see <see cref="UserStateStore"/>.</summary>
public interface IUserStateStore : IDisposable
{
    Task SaveAsync(long batch, long userId, byte[] state);

    Task<Dictionary<long, StoredUserState>> LoadForBatchAsync(long batch, CancellationToken cancellationToken = default);

    Task<long> RewindAsync(long batch);

    Task PruneBeforeAsync(long batch);
}

/// <summary>
/// The durable state of the per-user session actors: one row per user per batch the user took part in,
/// holding the user's session state after that batch. Each actor saves its own row; all saves waiting
/// when the writer is free share one transaction (group commit), and a save completes only once its
/// transaction has committed. A batch reads back every state it can need in one query (bulk recovery):
/// a session is open at the start of batch N only if its user took part in batch N-1, and a row for N
/// itself means the user has applied N already (a replay after a crash).
/// </summary>
public sealed class UserStateStore : IUserStateStore
{
    private const int MaxSavesPerTransaction = 20_000;
    private readonly Channel<Save> _queue = Channel.CreateUnbounded<Save>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Func<DbConnection> _connect;
    private readonly string _upsert;
    private readonly bool _sqlite;
    private readonly Task _writer;

    private UserStateStore(Func<DbConnection> connect, bool sqlite, string schema)
    {
        _connect = connect;
        _sqlite = sqlite;
        _upsert = "INSERT INTO user_states (batch, user_id, state) VALUES (@batch, @user, @state) ON CONFLICT (batch, user_id) DO UPDATE SET state = excluded.state";
        using (var connection = Open())
        using (var command = connection.CreateCommand())
        {
            command.CommandText = schema;
            command.ExecuteNonQuery();
        }

        _writer = Task.Factory.StartNew(WriteLoopAsync, TaskCreationOptions.LongRunning).Unwrap();
    }

    /// <summary>An SQLite file of its own (WAL, synchronous=FULL), so its writer never waits for the coordinator's.</summary>
    public static UserStateStore Sqlite(string path, TimeSpan busyTimeout)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = (int)Math.Ceiling(busyTimeout.TotalSeconds) }.ToString();
        return new UserStateStore(
            () => new SqliteConnection(connectionString),
            sqlite: true,
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS user_states (batch INTEGER NOT NULL, user_id INTEGER NOT NULL, state BLOB NOT NULL, PRIMARY KEY (batch, user_id)) WITHOUT ROWID;
            """);
    }

    /// <summary>A table in the PostgreSQL database that also holds the coordinator's journal.</summary>
    public static UserStateStore PostgreSql(string connectionString) =>
        new(
            () => new NpgsqlConnection(connectionString),
            sqlite: false,
            "CREATE TABLE IF NOT EXISTS user_states (batch BIGINT NOT NULL, user_id BIGINT NOT NULL, state BYTEA NOT NULL, PRIMARY KEY (batch, user_id))");

    /// <summary>Saves a user's state after <paramref name="batch"/>; completes when it is durable.</summary>
    public Task SaveAsync(long batch, long userId, byte[] state) => Enqueue(new Save(batch, userId, state, null));

    /// <summary>
    /// Every state batch <paramref name="batch"/> can need, by user: the user's row for that batch if it has
    /// one (the batch was applied before a crash), else its row for the batch before.
    /// </summary>
    public async Task<Dictionary<long, StoredUserState>> LoadForBatchAsync(long batch, CancellationToken cancellationToken = default)
    {
        var states = new Dictionary<long, StoredUserState>();
        await using var connection = Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT batch, user_id, state FROM user_states WHERE batch >= @from AND batch <= @to ORDER BY batch";
        Add(command, "@from", batch - 1);
        Add(command, "@to", batch);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
            states[reader.GetInt64(1)] = new StoredUserState(reader.GetInt64(0), (byte[])reader.GetValue(2));
        return states;
    }

    /// <summary>Every state a user has, oldest first (for inspection and tests).</summary>
    public async Task<List<StoredUserState>> HistoryAsync(long userId)
    {
        var states = new List<StoredUserState>();
        await using var connection = Open();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT batch, state FROM user_states WHERE user_id = @user ORDER BY batch";
        Add(command, "@user", userId);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            states.Add(new StoredUserState(reader.GetInt64(0), (byte[])reader.GetValue(1)));
        return states;
    }

    /// <summary>Takes every user back to how it stood before <paramref name="batch"/>; returns how many users that reset.</summary>
    public async Task<long> RewindAsync(long batch)
    {
        long users = 0;
        await Enqueue(new Save(0, 0, null, (connection, transaction) =>
        {
            using var count = connection.CreateCommand();
            count.Transaction = transaction;
            count.CommandText = "SELECT count(DISTINCT user_id) FROM user_states WHERE batch >= @from";
            Add(count, "@from", batch);
            users = Convert.ToInt64(count.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
            using var delete = connection.CreateCommand();
            delete.Transaction = transaction;
            delete.CommandText = "DELETE FROM user_states WHERE batch >= @from";
            Add(delete, "@from", batch);
            delete.ExecuteNonQuery();
        }));
        return users;
    }

    /// <summary>Deletes states from before <paramref name="batch"/>: no batch still retained can need them.</summary>
    public Task PruneBeforeAsync(long batch) =>
        Enqueue(new Save(0, 0, null, (connection, transaction) =>
        {
            using var delete = connection.CreateCommand();
            delete.Transaction = transaction;
            delete.CommandText = "DELETE FROM user_states WHERE batch < @before";
            Add(delete, "@before", batch);
            delete.ExecuteNonQuery();
        }));

    private DbConnection Open()
    {
        var connection = _connect();
        connection.Open();
        return connection;
    }

    private Task Enqueue(Save save)
    {
        if (!_queue.Writer.TryWrite(save))
            save.Done.SetException(new ObjectDisposedException(nameof(UserStateStore), "the user state store is closed"));
        return save.Done.Task;
    }

    private static void Add(DbCommand command, string name, object value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value;
        command.Parameters.Add(parameter);
    }

    private async Task WriteLoopAsync()
    {
        await using var connection = Open();
        if (_sqlite)
        {
            await using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA synchronous=FULL;";
            pragma.ExecuteNonQuery();
        }

        var group = new List<Save>();
        while (await _queue.Reader.WaitToReadAsync())
        {
            group.Clear();
            while (group.Count < MaxSavesPerTransaction && _queue.Reader.TryRead(out var save))
                group.Add(save);
            try
            {
                await using var transaction = await connection.BeginTransactionAsync();
                await using var upsert = connection.CreateCommand();
                upsert.Transaction = transaction;
                upsert.CommandText = _upsert;
                var batch = upsert.CreateParameter();
                var user = upsert.CreateParameter();
                var state = upsert.CreateParameter();
                (batch.ParameterName, user.ParameterName, state.ParameterName) = ("@batch", "@user", "@state");
                upsert.Parameters.Add(batch);
                upsert.Parameters.Add(user);
                upsert.Parameters.Add(state);
                foreach (var save in group)
                {
                    if (save.Apply is not null)
                    {
                        save.Apply(connection, transaction);
                        continue;
                    }

                    (batch.Value, user.Value, state.Value) = (save.Batch, save.UserId, save.State);
                    upsert.ExecuteNonQuery();
                }

                await transaction.CommitAsync();
                foreach (var save in group)
                    save.Done.SetResult();
            }
            catch (Exception e)
            {
                foreach (var save in group)
                    save.Done.TrySetException(e);
            }
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _writer.Wait(TimeSpan.FromSeconds(30));
    }

    private sealed record Save(long Batch, long UserId, byte[]? State, Action<DbConnection, DbTransaction>? Apply)
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

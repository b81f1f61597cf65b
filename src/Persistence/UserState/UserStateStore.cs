using System.Collections.Concurrent;
using System.Data.Common;
using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Npgsql;
using Sessionization.Domain;

namespace Sessionization.Persistence.UserState;

/// <summary>A user's durable session state as it stood after one batch.</summary>
public readonly record struct StoredUserState(long Batch, ReadOnlyMemory<byte> State)
{
    /// <summary>The state itself; with <paramref name="pages"/>, equal page names of different users become one string.</summary>
    public UserSessionState Decode(SharedStrings? pages = null) => UserStateCodec.Decode(State.Span, pages);
}

/// <summary>A user's state could not be saved; names the user, the batch and the cause.</summary>
public sealed class UserStateSaveException(long batch, long userId, Exception cause)
    : Exception($"saving the state of user {userId} for batch {batch} failed: {cause.Message}", cause)
{
    public long Batch { get; } = batch;

    public long UserId { get; } = userId;
}

/// <summary>Where the per-user session actors keep their state; see <see cref="UserStateStore"/>.</summary>
public interface IUserStateStore : IDisposable
{
    /// <summary>
    /// Queues a user's state after <paramref name="batch"/> for the next group commit. It is encoded on the
    /// caller's thread, so the entities of a batch encode their states in parallel and the one writer only writes.
    /// </summary>
    void Save(long batch, UserSessionState state);

    /// <summary>
    /// Completes once every save queued before it is durable; throws <see cref="UserStateSaveException"/> for
    /// the first save of <paramref name="batch"/> that failed since the last flush of that batch.
    /// </summary>
    Task FlushAsync(long batch);

    /// <summary>Every state batch <paramref name="batch"/> can need, by user (its own if saved, else the batch before's).</summary>
    Task<Dictionary<long, StoredUserState>> LoadForBatchAsync(long batch, CancellationToken cancellationToken = default);

    /// <summary>Deletes every state saved for <paramref name="batch"/> or later; returns how many users that resets.</summary>
    Task<long> RewindAsync(long batch);

    /// <summary>Deletes the states saved before <paramref name="batch"/>.</summary>
    Task PruneBeforeAsync(long batch);
}

/// <summary>
/// The durable state of the per-user session actors: for each batch, the session state of every user that
/// took part in it, as it stood after the batch. Each actor saves its own state; all saves waiting when the
/// writer is free share one transaction (group commit) and are stored together as one chunk row per batch,
/// so a save costs a few bytes appended to a buffer rather than a row of its own. A batch is committed only
/// after <see cref="FlushAsync"/> says every save made for it is durable. A batch reads back every state it
/// can need in one query (bulk recovery): a session is open at the start of batch N only if its user took
/// part in batch N-1, and a state saved for N itself means the user has applied N already (a replay after a
/// crash). Nothing ever reads one user alone, so nothing is indexed by user.
/// </summary>
public sealed class UserStateStore : IUserStateStore
{
    private const int MaxSavesPerTransaction = 50_000;
    private readonly Channel<Item> _queue = Channel.CreateUnbounded<Item>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ConcurrentDictionary<long, UserStateSaveException> _failures = new();
    private readonly Func<DbConnection> _connect;
    private readonly bool _sqlite;
    private readonly Task _writer;
    private readonly string _table;

    private UserStateStore(Func<DbConnection> connect, bool sqlite, string table, string schema)
    {
        _connect = connect;
        _sqlite = sqlite;
        _table = table;
        using (var connection = Open())
        using (var command = connection.CreateCommand())
        {
            command.CommandText = schema;
            command.ExecuteNonQuery();
        }

        _writer = Task.Factory.StartNew(WriteLoopAsync, TaskCreationOptions.LongRunning).Unwrap();
    }

    /// <summary>An SQLite file of its own (WAL, synchronous=FULL), so its writer never waits for the coordinator's.</summary>
    public static UserStateStore Sqlite(string path, TimeSpan busyTimeout, string? pipelineId = null)
    {
        var table = TableFor(pipelineId);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = (int)Math.Ceiling(busyTimeout.TotalSeconds) }.ToString();
        return new UserStateStore(
            () => new SqliteConnection(connectionString),
            sqlite: true,
            table,
            $"""
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, batch INTEGER NOT NULL, users INTEGER NOT NULL, states BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS {table}_by_batch ON {table} (batch, id);
            """);
    }

    /// <summary>A table in the PostgreSQL database that also holds the coordinator's journal.</summary>
    public static UserStateStore PostgreSql(string connectionString, string? pipelineId = null)
    {
        var table = TableFor(pipelineId);
        return new(
            () => new NpgsqlConnection(connectionString),
            sqlite: false,
            table,
            $"CREATE TABLE IF NOT EXISTS {table} (id BIGSERIAL PRIMARY KEY, batch BIGINT NOT NULL, users INTEGER NOT NULL, states BYTEA NOT NULL); " +
            $"CREATE INDEX IF NOT EXISTS {table}_by_batch ON {table} (batch, id)");
    }

    /// <summary>
    /// Each pipeline keeps its states in a table of its own, so several base directories can share one database
    /// without seeing each other's users.
    /// </summary>
    public static string TableFor(string? pipelineId) =>
        pipelineId is null ? "user_states" : "user_states_" + Guid.Parse(pipelineId).ToString("N");

    public void Save(long batch, UserSessionState state)
    {
        if (!_queue.Writer.TryWrite(new Item(batch, state.UserId, UserStateCodec.Encode(state), null, null)))
            _failures.TryAdd(batch, new UserStateSaveException(batch, state.UserId, new ObjectDisposedException(nameof(UserStateStore), "the user state store is closed")));
    }

    public async Task FlushAsync(long batch)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await Enqueue((_, _) => Task.CompletedTask);
        }
        catch (Exception) when (_failures.ContainsKey(batch))
        {
            // The flush shared the failed transaction; the failure that matters is the save's, thrown below.
        }

        if (_failures.TryRemove(batch, out var failure))
            throw failure;
        SessionizationMetrics.StoreFlushDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new KeyValuePair<string, object?>("store", "user-sessions"));
    }

    /// <summary>
    /// Every state batch <paramref name="batch"/> can need, by user: the user's state for that batch if it has
    /// one (the batch was applied before a crash), else its state for the batch before.
    /// </summary>
    public async Task<Dictionary<long, StoredUserState>> LoadForBatchAsync(long batch, CancellationToken cancellationToken = default)
    {
        var states = new Dictionary<long, StoredUserState>();
        await using var connection = Open();
        await ReadChunksAsync(connection, null, batch - 1, batch, (chunkBatch, user, state) => states[user] = new StoredUserState(chunkBatch, state), cancellationToken);
        return states;
    }

    /// <summary>Reads the chunks of batches <paramref name="from"/>..<paramref name="to"/> in save order, so a later save of a user's state wins.</summary>
    private async Task ReadChunksAsync(DbConnection connection, DbTransaction? transaction, long from, long to, Action<long, long, ReadOnlyMemory<byte>> onState, CancellationToken cancellationToken = default)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT batch, states FROM {_table} WHERE batch >= @from AND batch <= @to ORDER BY batch, id";
        Add(command, "@from", from);
        Add(command, "@to", to);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var chunkBatch = reader.GetInt64(0);
            var chunk = (byte[])reader.GetValue(1);
            // The states are handed out as slices of the chunk: no copy per user.
            using var index = new BinaryReader(new MemoryStream(chunk, writable: false));
            var count = index.Read7BitEncodedInt();
            for (var i = 0; i < count; i++)
            {
                var user = index.ReadInt64();
                var length = index.Read7BitEncodedInt();
                var offset = (int)index.BaseStream.Position;
                onState(chunkBatch, user, new ReadOnlyMemory<byte>(chunk, offset, length));
                index.BaseStream.Position = offset + length;
            }
        }
    }

    /// <summary>Takes every user back to how it stood before <paramref name="batch"/>; returns how many users that reset.</summary>
    public async Task<long> RewindAsync(long batch)
    {
        long users = 0;
        await Enqueue(async (connection, transaction) =>
        {
            var reset = new HashSet<long>();
            await ReadChunksAsync(connection, transaction, batch, long.MaxValue, (_, user, _) => reset.Add(user));
            users = reset.Count;
            await using var delete = connection.CreateCommand();
            delete.Transaction = transaction;
            delete.CommandText = $"DELETE FROM {_table} WHERE batch >= @from";
            Add(delete, "@from", batch);
            await delete.ExecuteNonQueryAsync();
        });
        return users;
    }

    /// <summary>Deletes states from before <paramref name="batch"/>: no batch still retained can need them.</summary>
    public Task PruneBeforeAsync(long batch) =>
        Enqueue(async (connection, transaction) =>
        {
            await using var delete = connection.CreateCommand();
            delete.Transaction = transaction;
            delete.CommandText = $"DELETE FROM {_table} WHERE batch < @before";
            Add(delete, "@before", batch);
            await delete.ExecuteNonQueryAsync();
        });

    private DbConnection Open()
    {
        var connection = _connect();
        connection.Open();
        return connection;
    }

    /// <summary>Runs <paramref name="apply"/> in the writer's next transaction, after every save queued before it.</summary>
    private Task Enqueue(Func<DbConnection, DbTransaction, Task> apply)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite(new Item(0, 0, null, apply, done)))
            done.SetException(new ObjectDisposedException(nameof(UserStateStore), "the user state store is closed"));
        return done.Task;
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
        DbConnection? connection = null;
        var group = new List<Item>();
        try
        {
            while (await _queue.Reader.WaitToReadAsync())
            {
                group.Clear();
                while (group.Count < MaxSavesPerTransaction && _queue.Reader.TryRead(out var item))
                    group.Add(item);
                try
                {
                    connection ??= await OpenWriterAsync();
                    await using var transaction = await connection.BeginTransactionAsync();
                    // In queue order: states saved before a rewind or prune are taken by it, those after survive.
                    var states = new List<Item>();
                    foreach (var item in group)
                    {
                        if (item.Apply is null)
                        {
                            states.Add(item);
                            continue;
                        }

                        InsertChunks(connection, transaction, states);
                        states.Clear();
                        await item.Apply(connection, transaction);
                    }

                    InsertChunks(connection, transaction, states);
                    await transaction.CommitAsync();
                    foreach (var item in group)
                        item.Done?.SetResult();
                }
                catch (Exception e)
                {
                    foreach (var item in group)
                    {
                        item.Done?.TrySetException(e);
                        if (item.State is not null)
                            _failures.TryAdd(item.Batch, new UserStateSaveException(item.Batch, item.UserId, e));
                    }

                    // A failed transaction may have left the connection unusable (a server connection dropped
                    // mid-way); the next group starts on a fresh one.
                    if (connection is not null)
                        await connection.DisposeAsync();
                    connection = null;
                }
            }
        }
        finally
        {
            if (connection is not null)
                await connection.DisposeAsync();
        }
    }

    private async Task<DbConnection> OpenWriterAsync()
    {
        var connection = Open();
        if (_sqlite)
        {
            await using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA synchronous=FULL;";
            await pragma.ExecuteNonQueryAsync();
        }

        return connection;
    }

    /// <summary>One row per batch among <paramref name="saves"/>: the users' states one after another.</summary>
    private void InsertChunks(DbConnection connection, DbTransaction transaction, List<Item> saves)
    {
        foreach (var batch in saves.GroupBy(s => s.Batch))
        {
            var users = batch.ToList();
            // Sized up front (a count and a length take at most 5 bytes each), so the chunk is one array.
            var chunk = new MemoryStream(5 + users.Sum(u => 8 + 5 + u.State!.Length));
            using (var w = new BinaryWriter(chunk, System.Text.Encoding.UTF8, leaveOpen: true))
            {
                w.Write7BitEncodedInt(users.Count);
                foreach (var save in users)
                {
                    w.Write(save.UserId);
                    w.Write7BitEncodedInt(save.State!.Length);
                    w.Write(save.State);
                }
            }

            using var insert = connection.CreateCommand();
            insert.Transaction = transaction;
            insert.CommandText = $"INSERT INTO {_table} (batch, users, states) VALUES (@batch, @users, @states)";
            Add(insert, "@batch", batch.Key);
            Add(insert, "@users", users.Count);
            Add(insert, "@states", chunk.ToArray());
            insert.ExecuteNonQuery();
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _writer.Wait(TimeSpan.FromSeconds(30));
    }

    /// <summary>A queued save (a state) or a step of the writer's (an action, with its completion).</summary>
    private sealed record Item(long Batch, long UserId, byte[]? State, Func<DbConnection, DbTransaction, Task>? Apply, TaskCompletionSource? Done);
}

using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Sessionization.Persistence.Journal;

/// <summary>
/// One SQLite file with one writer: every write waiting when the writer is free goes into the same
/// transaction, so a batch touching thousands of users costs a handful of commits (and fsyncs) instead of
/// thousands. A write's task completes only after its transaction has committed.
/// </summary>
public sealed class SqliteWriter : IDisposable
{
    private const int MaxWritesPerTransaction = 5000;
    private readonly Channel<(Action<SqliteConnection, SqliteTransaction> Apply, TaskCompletionSource Done)> _queue =
        Channel.CreateUnbounded<(Action<SqliteConnection, SqliteTransaction>, TaskCompletionSource)>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _loop;

    public SqliteWriter(string path, string schema)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        ConnectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = 30 }.ToString();
        using (var connection = Open())
        using (var command = connection.CreateCommand())
        {
            command.CommandText = "PRAGMA journal_mode=WAL; " + schema;
            command.ExecuteNonQuery();
        }

        _loop = Task.Factory.StartNew(RunAsync, TaskCreationOptions.LongRunning).Unwrap();
    }

    public string ConnectionString { get; }

    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(ConnectionString);
        connection.Open();
        return connection;
    }

    public Task WriteAsync(Action<SqliteConnection, SqliteTransaction> apply)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite((apply, done)))
            done.SetException(new ObjectDisposedException(nameof(SqliteWriter)));
        return done.Task;
    }

    private async Task RunAsync()
    {
        using var connection = Open();
        using (var pragma = connection.CreateCommand())
        {
            pragma.CommandText = "PRAGMA synchronous=FULL;";
            pragma.ExecuteNonQuery();
        }

        var group = new List<(Action<SqliteConnection, SqliteTransaction> Apply, TaskCompletionSource Done)>();
        while (await _queue.Reader.WaitToReadAsync())
        {
            group.Clear();
            while (group.Count < MaxWritesPerTransaction && _queue.Reader.TryRead(out var write))
                group.Add(write);
            try
            {
                using var transaction = connection.BeginTransaction();
                foreach (var write in group)
                    write.Apply(connection, transaction);
                transaction.Commit();
                foreach (var write in group)
                    write.Done.SetResult();
            }
            catch (Exception e)
            {
                foreach (var write in group)
                    write.Done.TrySetException(e);
            }
        }
    }

    public void Dispose()
    {
        _queue.Writer.TryComplete();
        _loop.Wait(TimeSpan.FromSeconds(30));
    }
}

using System.Globalization;
using Parquet;
using Parquet.Schema;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;

namespace Sessionization.Persistence.Tables;

/// <summary>One row of <c>sessions</c> or <c>pending_sessions</c>.</summary>
public sealed record SessionRow(long UserId, string ConcatenatedPages, long BatchNumber, long StartTimeMicros, long EndTimeMicros, long VisitCount)
{
    public static SessionRow From(Session session, long batch) =>
        new(session.UserId, session.ConcatenatedPages, batch, session.StartTimeMicros, session.EndTimeMicros, session.VisitCount);
}

/// <summary>
/// The sessionizer's output tables. Each batch is one commit per table carrying a <c>txn</c> action
/// (app id + batch number), so a batch that is written again after a crash is recognised and skipped.
/// </summary>
public sealed class SessionTable
{
    public const string AppId = BatchTableLog.AppId;
    public const string PendingDirectoryName = "pending_sessions";
    public const string CompletedDirectoryName = "sessions";

    private readonly DataField[] _columns;
    private readonly ParquetSchema _schema;

    private SessionTable(string path, bool pending)
    {
        Delta = new DeltaTable(path, pending ? PendingDirectoryName : CompletedDirectoryName);
        // Parquet.Net binds a field to one schema, so each table builds its own.
        DataField userId = new DataField<long>("user_id", false);
        DataField pages = new DataField<string>("concatenated_pages", false);
        DataField batch = new DataField<long>("batch_number", false);
        DataField start = new DateTimeDataField("start_time", DateTimeFormat.Timestamp, true, DateTimeTimeUnit.Micros, false);
        DataField end = new DateTimeDataField("end_time", DateTimeFormat.Timestamp, true, DateTimeTimeUnit.Micros, false);
        DataField count = new DataField<long>("visit_count", false);
        // Column order follows SPEC.md: pending rows lead with their batch, completed rows end with it.
        _columns = pending ? [userId, pages, batch, start, end, count] : [userId, pages, start, end, count, batch];
        _schema = new ParquetSchema(_columns);
        Schema = new DeltaSchema(_columns.Select(c => new DeltaField(c.Name, c is DateTimeDataField ? "timestamp" : c.ClrType == typeof(long) ? "long" : "string", false)).ToList());
        Log = new BatchTableLog(Delta, Schema);
    }

    public DeltaTable Delta { get; }

    public DeltaSchema Schema { get; }

    public string Name => Delta.Name;

    public static SessionTable Pending(string baseDirectory) => new(Path.Combine(baseDirectory, PendingDirectoryName), true);

    public static SessionTable Completed(string baseDirectory) => new(Path.Combine(baseDirectory, CompletedDirectoryName), false);

    public BatchTableLog Log { get; }

    /// <summary>The last batch committed to this table, or null if none.</summary>
    public long? LastCommittedBatch() => Log.LastCommittedBatch();

    /// <summary>
    /// Commits <paramref name="rows"/> as batch <paramref name="batch"/>, unless that batch is already in the
    /// table. Returns false when it was (a replay). <paramref name="commitTimeMillis"/> is the batch's own
    /// time, so that the same input always produces the same bytes.
    /// </summary>
    public Task<bool> CommitBatchAsync(long batch, IReadOnlyList<SessionRow> rows, long commitTimeMillis, CancellationToken cancellationToken = default)
    {
        var stats = rows.Count == 0
            ? ""
            : FormattableString.Invariant($"\"minValues\":{{\"user_id\":{rows.Min(r => r.UserId)},\"batch_number\":{batch}}},\"maxValues\":{{\"user_id\":{rows.Max(r => r.UserId)},\"batch_number\":{batch}}},\"nullCount\":{{\"user_id\":0,\"batch_number\":0}}");
        return Log.CommitBatchAsync(
            batch, rows.Count, stats, path => ParquetFiles.WriteAtomicallyAsync(path, s => WriteFileAsync(s, rows, cancellationToken)), commitTimeMillis);
    }

    /// <summary>Takes back batch <paramref name="batch"/> and all later ones (see <see cref="BatchTableLog.RewindTo"/>).</summary>
    public bool RewindTo(long batch, long commitTimeMillis) => Log.RewindTo(batch, commitTimeMillis);

    private async Task WriteFileAsync(Stream stream, IReadOnlyList<SessionRow> rows, CancellationToken cancellationToken)
    {
        await using var writer = await ParquetWriter.CreateAsync(_schema, stream, ParquetFiles.WriteOptions, cancellationToken: cancellationToken);
        using var group = writer.CreateRowGroup();
        foreach (var column in _columns)
        {
            switch (column.Name)
            {
                case "user_id":
                    await group.WriteAsync<long>(column, rows.Select(r => r.UserId).ToArray());
                    break;
                case "concatenated_pages":
                    await group.WriteAsync(column, rows.Select(r => r.ConcatenatedPages).ToArray());
                    break;
                case "batch_number":
                    await group.WriteAsync<long>(column, rows.Select(r => r.BatchNumber).ToArray());
                    break;
                case "start_time":
                    await group.WriteAsync<DateTime>(column, rows.Select(r => Timestamps.ToDateTime(r.StartTimeMicros)).ToArray());
                    break;
                case "end_time":
                    await group.WriteAsync<DateTime>(column, rows.Select(r => Timestamps.ToDateTime(r.EndTimeMicros)).ToArray());
                    break;
                case "visit_count":
                    await group.WriteAsync<long>(column, rows.Select(r => r.VisitCount).ToArray());
                    break;
            }
        }
    }

    /// <summary>Every row of the table at its latest version.</summary>
    public async Task<List<SessionRow>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        if (!Delta.Exists)
            return [];
        var rows = new List<SessionRow>();
        foreach (var file in Delta.LoadSnapshot().Files)
            rows.AddRange(await ReadFileAsync(Delta.DataFilePath(file.Path), cancellationToken));
        return rows;
    }

    /// <summary>
    /// The rows committed by <paramref name="batch"/> alone, found by walking back from the newest commit. A rewind
    /// commit (one that removes files) makes every older commit of a later batch dead, so those are passed over.
    /// </summary>
    public async Task<List<SessionRow>> ReadBatchAsync(long batch, CancellationToken cancellationToken = default)
    {
        var log = Delta.ListLog();
        var ceiling = long.MaxValue;
        for (var i = log.Commits.Count - 1; i >= 0; i--)
        {
            var actions = Delta.ReadCommit(log.Commits[i]);
            var txn = actions.OfType<TxnAction>().FirstOrDefault(t => t.AppId == AppId);
            if (txn is null)
                continue;
            if (actions.OfType<RemoveFile>().Any())
            {
                ceiling = Math.Min(ceiling, txn.Version);
                continue;
            }

            if (txn.Version > ceiling || txn.Version > batch)
                continue;
            if (txn.Version < batch)
                break;
            var rows = new List<SessionRow>();
            foreach (var add in actions.OfType<AddFile>())
                rows.AddRange(await ReadFileAsync(Delta.DataFilePath(add.Path), cancellationToken));
            return rows;
        }

        return [];
    }

    private async Task<List<SessionRow>> ReadFileAsync(string path, CancellationToken cancellationToken)
    {
        await using var reader = await ParquetReader.CreateAsync(path, cancellationToken: cancellationToken);
        DataField Field(string name) => reader.Schema.DataFields.FirstOrDefault(f => f.Name == name)
            ?? throw new DeltaTableException($"{Name}/{Path.GetFileName(path)}: has no column '{name}'");
        var rows = new List<SessionRow>();
        for (var g = 0; g < reader.RowGroupCount; g++)
        {
            using var group = reader.OpenRowGroupReader(g);
            var n = (int)group.RowCount;
            var ids = new long[n];
            var pages = new string[n];
            var batches = new long[n];
            var starts = new DateTime[n];
            var ends = new DateTime[n];
            var counts = new long[n];
            await group.ReadAsync<long>(Field("user_id"), ids, null, cancellationToken);
            await group.ReadAsync(Field("concatenated_pages"), pages, null, cancellationToken);
            await group.ReadAsync<long>(Field("batch_number"), batches, null, cancellationToken);
            await group.ReadAsync<DateTime>(Field("start_time"), starts, null, cancellationToken);
            await group.ReadAsync<DateTime>(Field("end_time"), ends, null, cancellationToken);
            await group.ReadAsync<long>(Field("visit_count"), counts, null, cancellationToken);
            for (var i = 0; i < n; i++)
                rows.Add(new SessionRow(ids[i], pages[i], batches[i], Timestamps.ToMicros(starts[i]), Timestamps.ToMicros(ends[i]), counts[i]));
        }

        return rows;
    }
}

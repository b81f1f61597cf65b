using System.Globalization;
using Parquet;
using Parquet.Schema;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Parquet;

namespace Sessionization.Persistence.Tables;

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

    private SessionTable(string path, bool pending, int checkpointInterval)
    {
        Delta = new DeltaTable(path, pending ? PendingDirectoryName : CompletedDirectoryName) { CheckpointInterval = checkpointInterval };
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

    public static SessionTable Pending(string baseDirectory, int checkpointInterval = DeltaTable.DefaultCheckpointInterval) =>
        new(Path.Combine(baseDirectory, PendingDirectoryName), true, checkpointInterval);

    public static SessionTable Completed(string baseDirectory, int checkpointInterval = DeltaTable.DefaultCheckpointInterval) =>
        new(Path.Combine(baseDirectory, CompletedDirectoryName), false, checkpointInterval);

    public BatchTableLog Log { get; }

    /// <summary>The last batch committed to this table, or null if none.</summary>
    public long? LastCommittedBatch() => Log.LastCommittedBatch();

    /// <summary>
    /// Commits <paramref name="rows"/> as batch <paramref name="batch"/>, unless that batch is already in the
    /// table. Returns false when it was (a replay). The data file depends on the rows alone, so the same input
    /// always produces the same bytes.
    /// </summary>
    public Task<bool> CommitBatchAsync(
        long batch, IReadOnlyList<SessionRecord> rows, PipelineIdentity pipeline, BatchProvenance? provenance = null, CancellationToken cancellationToken = default)
    {
        var stats = new FileStats(rows.Count)
            .Long("user_id", rows.Select(r => (long?)r.UserId))
            .Strings("concatenated_pages", rows.Select(r => r.ConcatenatedPages))
            .Long("batch_number", rows.Select(r => (long?)r.BatchNumber))
            .Timestamp("start_time", rows.Select(r => (long?)r.StartTimeMicros))
            .Timestamp("end_time", rows.Select(r => (long?)r.EndTimeMicros))
            .Long("visit_count", rows.Select(r => (long?)r.VisitCount));
        var file = new BatchFile(rows.Count, stats, s => WriteFileAsync(s, rows, cancellationToken), [
            new TimestampValues("start_time", [.. rows.Select(r => r.StartTimeMicros)], null),
            new TimestampValues("end_time", [.. rows.Select(r => r.EndTimeMicros)], null)]);
        return Log.CommitBatchAsync(batch, file, pipeline, provenance);
    }

    /// <summary>Takes back batch <paramref name="batch"/> and all later ones (see <see cref="BatchTableLog.RewindTo"/>).</summary>
    public bool RewindTo(long batch) => Log.RewindTo(batch);

    private async Task WriteFileAsync(Stream stream, IReadOnlyList<SessionRecord> rows, CancellationToken cancellationToken)
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

    /// <summary>Every row of the table at its latest version, or at <paramref name="version"/> (time travel).</summary>
    public async Task<List<SessionRecord>> ReadAllAsync(long? version = null, CancellationToken cancellationToken = default)
    {
        if (!Delta.Exists)
            return [];
        var rows = new List<SessionRecord>();
        foreach (var file in Delta.LoadSnapshot(version).Files)
            rows.AddRange(await ReadFileAsync(file.Path, file.Size, cancellationToken));
        return rows;
    }

    /// <summary>
    /// The rows committed by <paramref name="batch"/> alone, found by walking back from the newest commit. A rewind
    /// commit (one that removes files) makes every older commit of a later batch dead, so those are passed over.
    /// </summary>
    public async Task<List<SessionRecord>> ReadBatchAsync(long batch, CancellationToken cancellationToken = default)
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
            var rows = new List<SessionRecord>();
            foreach (var add in actions.OfType<AddFile>())
                rows.AddRange(await ReadFileAsync(add.Path, add.Size, cancellationToken));
            return rows;
        }

        return [];
    }

    private async Task<List<SessionRecord>> ReadFileAsync(string logPath, long loggedSize, CancellationToken cancellationToken)
    {
        var path = Delta.DataFilePath(logPath);
        await using var stream = ParquetFiles.OpenLogged(Name, path, loggedSize);
        await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken);
        DataField Field(string name) => reader.Schema.DataFields.FirstOrDefault(f => f.Name == name)
            ?? throw new DeltaTableException($"{Name}/{Path.GetFileName(path)}: has no column '{name}'");
        var rows = new List<SessionRecord>();
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
                rows.Add(new SessionRecord(ids[i], pages[i], batches[i], Timestamps.ToMicros(starts[i]), Timestamps.ToMicros(ends[i]), counts[i]));
        }

        return rows;
    }
}

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
    /// always produces the same bytes. <paramref name="removed"/> are rows earlier batches wrote that this batch
    /// takes out (a session corrected or merged into another): the files holding them are rewritten without them
    /// in the same commit, so a reader of the new version sees each session once.
    /// </summary>
    public async Task<bool> CommitBatchAsync(
        long batch,
        IReadOnlyList<SessionRecord> rows,
        PipelineIdentity pipeline,
        BatchProvenance? provenance = null,
        IReadOnlyList<SessionRecord>? removed = null,
        CancellationToken cancellationToken = default)
    {
        List<FileRewrite>? rewrites = null;
        if (removed is { Count: > 0 })
        {
            // A replay must not look for rows its first attempt already took out; the log skips it below anyway.
            if (Log.LastCommittedBatch() >= batch)
                return false;
            rewrites = await RewritesAsync(batch, removed, cancellationToken);
        }

        return await Log.CommitBatchAsync(batch, File(rows, cancellationToken), pipeline, provenance, rewrites);
    }

    private BatchFile File(IReadOnlyList<SessionRecord> rows, CancellationToken cancellationToken)
    {
        var stats = new FileStats(rows.Count)
            .Long("user_id", rows.Select(r => (long?)r.UserId))
            .Strings("concatenated_pages", rows.Select(r => r.ConcatenatedPages))
            .Long("batch_number", rows.Select(r => (long?)r.BatchNumber))
            .Timestamp("start_time", rows.Select(r => (long?)r.StartTimeMicros))
            .Timestamp("end_time", rows.Select(r => (long?)r.EndTimeMicros))
            .Long("visit_count", rows.Select(r => (long?)r.VisitCount));
        return new BatchFile(rows.Count, stats, s => WriteFileAsync(s, rows, cancellationToken), [
            new TimestampValues("start_time", [.. rows.Select(r => r.StartTimeMicros)], null),
            new TimestampValues("end_time", [.. rows.Select(r => r.EndTimeMicros)], null)]);
    }

    /// <summary>The files holding <paramref name="removed"/> (found by their batch), each rewritten without them; every row must be found.</summary>
    private async Task<List<FileRewrite>> RewritesAsync(long batch, IReadOnlyList<SessionRecord> removed, CancellationToken cancellationToken)
    {
        var snapshot = Delta.LoadSnapshot();
        var rewrites = new List<FileRewrite>();
        foreach (var fromBatch in removed.GroupBy(r => r.BatchNumber))
        {
            var left = fromBatch.ToList();
            foreach (var file in snapshot.Files.Where(f => Log.BatchOf(f) == fromBatch.Key))
            {
                var rows = await ReadFileAsync(file.Path, file.Size, cancellationToken);
                var kept = rows.Where(row => !left.Remove(row)).ToList();
                if (kept.Count < rows.Count)
                    rewrites.Add(new FileRewrite(file, kept.Count == 0 ? null : File(kept, cancellationToken)));
            }

            if (left.Count > 0)
                throw new DeltaTableException($"{Name}: batch {batch} corrects a row that batch {fromBatch.Key} did not write: user {left[0].UserId}, '{left[0].ConcatenatedPages}'");
        }

        return rewrites;
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
    /// Every row of the latest version in (batch_number, user_id, start_time) order, read one batch at a time: the files'
    /// batch_number statistics order them, so a reader that stops early reads only the batches it shows, and memory
    /// holds one batch's rows.
    /// </summary>
    public async IAsyncEnumerable<SessionRecord> ReadInBatchOrderAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (!Delta.Exists)
            yield break;
        foreach (var batch in Delta.LoadSnapshot().Files.GroupBy(Log.BatchOf).OrderBy(g => g.Key))
        {
            var rows = new List<SessionRecord>();
            foreach (var file in batch)
                rows.AddRange(await ReadFileAsync(file.Path, file.Size, cancellationToken));
            rows.Sort(static (a, b) => a.BatchNumber != b.BatchNumber ? a.BatchNumber.CompareTo(b.BatchNumber)
                : a.UserId != b.UserId ? a.UserId.CompareTo(b.UserId)
                : a.StartTimeMicros.CompareTo(b.StartTimeMicros));
            foreach (var row in rows)
                yield return row;
        }
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
            if (BatchTableLog.IsRewind(actions))
            {
                ceiling = Math.Min(ceiling, txn.Version);
                continue;
            }

            if (txn.Version > ceiling || txn.Version > batch)
                continue;
            if (txn.Version < batch)
                break;
            var rows = new List<SessionRecord>();
            // A correcting batch's commit also adds earlier batches' files, rewritten: only its own rows are its.
            foreach (var add in actions.OfType<AddFile>().Where(a => Log.BatchOf(a) == batch))
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

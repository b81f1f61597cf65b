using System.Globalization;
using Parquet;
using Parquet.Schema;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Parquet;

namespace Sessionization.Persistence.Tables;

/// <summary>
/// What a compaction of one table did: the groups of files it joined (one new file each), the version it committed
/// (null when there was nothing to compact) and the bytes of the new files.
/// </summary>
public sealed record CompactionResult(string Table, IReadOnlyList<BatchFiles> Joined, long? Version, long Bytes);

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
        Func<Task>? beforeCommit = null,
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

        return await Log.CommitBatchAsync(batch, File(rows, cancellationToken), pipeline, provenance, rewrites, beforeCommit);
    }

    private BatchFile File(IReadOnlyList<SessionRecord> rows, CancellationToken cancellationToken)
    {
        // One pass over the rows for every column's statistics and the two timestamp columns, instead of one per column:
        // an event-time batch writes tens of thousands of rows to each table.
        ColumnBounds bounds = default;
        var startTimes = new long[rows.Count];
        var endTimes = new long[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            bounds.Include(row);
            startTimes[i] = row.StartTimeMicros;
            endTimes[i] = row.EndTimeMicros;
        }

        var stats = new FileStats(rows.Count);
        bounds.AddTo(stats);
        return new BatchFile(rows.Count, stats, s => WriteFileAsync(s, rows, cancellationToken), [
            new TimestampValues("start_time", startTimes, null),
            new TimestampValues("end_time", endTimes, null)]);
    }

    /// <summary>
    /// The files holding <paramref name="removed"/> (found by the batches they hold), each rewritten without them; every
    /// row must be found. A compacted file holding several batches is rewritten once, whatever it loses.
    /// </summary>
    private async Task<List<FileRewrite>> RewritesAsync(long batch, IReadOnlyList<SessionRecord> removed, CancellationToken cancellationToken)
    {
        var left = removed.ToList();
        var batches = removed.Select(r => r.BatchNumber).ToHashSet();
        var rewrites = new List<FileRewrite>();
        foreach (var file in Delta.LoadSnapshot().Files)
        {
            var (first, last) = Log.BatchRangeOf(file);
            if (!batches.Any(b => b >= first && b <= last))
                continue;
            var rows = await ReadFileAsync(file.Path, file.Size, cancellationToken);
            var kept = rows.Where(row => !left.Remove(row)).ToList();
            if (kept.Count < rows.Count)
                rewrites.Add(new FileRewrite(file, kept.Count == 0 ? null : File(kept, cancellationToken)));
        }

        if (left.Count > 0)
            throw new DeltaTableException($"{Name}: batch {batch} corrects a row that batch {left[0].BatchNumber} did not write: user {left[0].UserId}, '{left[0].ConcatenatedPages}'");
        return rewrites;
    }

    /// <summary>Takes back batch <paramref name="batch"/> and all later ones (see <see cref="BatchTableLog.RewindTo"/>).</summary>
    public bool RewindTo(long batch) => Log.RewindTo(batch);

    private async Task WriteFileAsync(Stream stream, IReadOnlyList<SessionRecord> rows, CancellationToken cancellationToken)
    {
        await using var writer = await ParquetWriter.CreateAsync(_schema, stream, ParquetFiles.WriteOptions, cancellationToken: cancellationToken);
        await WriteRowGroupAsync(writer, rows);
    }

    private async Task WriteRowGroupAsync(ParquetWriter writer, IReadOnlyList<SessionRecord> rows)
    {
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

    /// <summary>Rows per row group of a compacted file: DuckDB's own size, and what a reader holds at once.</summary>
    public const int CompactedRowGroupRows = 122_880;

    /// <summary>
    /// Compacts the table's small files (Delta's <c>OPTIMIZE</c>, bin-packing): files of consecutive batches, each
    /// smaller than <paramref name="targetBytes"/>, are joined into files of about that size, in batch order, in one
    /// commit that changes no rows (see <see cref="BatchTableLog.CommitCompactionAsync"/>). Only batches before
    /// <paramref name="compactBefore"/> are touched: the caller leaves out the batches a rewind can still take back,
    /// so a rewind never has to split a compacted file. Memory holds one source file's rows at a time.
    /// </summary>
    public async Task<CompactionResult> OptimizeAsync(long compactBefore, long targetBytes, int rowGroupRows = CompactedRowGroupRows, CancellationToken cancellationToken = default)
    {
        var bins = CompactionPlan(compactBefore, targetBytes);
        if (bins.Count == 0)
            return new CompactionResult(Name, [], null, 0);
        var committed = await Log.CommitCompactionAsync([.. bins.Select(b => (b, Compacted(b, rowGroupRows, cancellationToken)))]);
        return new CompactionResult(Name, bins, committed?.Version, committed?.Bytes ?? 0);
    }

    /// <summary>
    /// The groups of files a compaction before <paramref name="compactBefore"/> would join, one new file each: runs of
    /// consecutive batches' files of up to <paramref name="targetBytes"/>, at least two files a group.
    /// <paramref name="liveFiles"/> are the table's files when the caller has its snapshot already; otherwise it is loaded.
    /// </summary>
    public IReadOnlyList<BatchFiles> CompactionPlan(long compactBefore, long targetBytes, IReadOnlyList<AddFile>? liveFiles = null)
    {
        if (liveFiles is null && !Delta.Exists)
            return [];
        var bins = new List<BatchFiles>();
        var bin = new List<BatchFiles>();
        void Close()
        {
            if (bin.Sum(g => g.Files.Count) >= 2)
                bins.Add(new BatchFiles(bin[0].First, bin[^1].Last, [.. bin.SelectMany(g => g.Files)]));
            bin.Clear();
        }

        foreach (var group in Log.InBatchOrder(liveFiles ?? Delta.LoadSnapshot().Files))
        {
            if (group.Last >= compactBefore || group.Size >= targetBytes)
            {
                Close();
                continue;
            }

            if (bin.Sum(g => g.Size) + group.Size > targetBytes)
                Close();
            bin.Add(group);
        }

        Close();
        return bins;
    }

    /// <summary>The one file <paramref name="bin"/>'s rows go into, in batch order, streamed one source file at a time.</summary>
    private BatchFile Compacted(BatchFiles bin, int rowGroupRows, CancellationToken cancellationToken)
    {
        var expected = bin.Files.Sum(f => Log.RowCountOf(f));
        var stats = new FileStats(expected);
        var timestamps = new List<TimestampValues>();
        async Task Write(Stream stream)
        {
            var starts = new List<long>();
            var ends = new List<long>();
            ColumnBounds bounds = default;
            await using var writer = await ParquetWriter.CreateAsync(_schema, stream, ParquetFiles.WriteOptions, cancellationToken: cancellationToken);
            var rowGroup = new List<SessionRecord>(Math.Min(rowGroupRows, checked((int)Math.Min(expected, int.MaxValue))));
            async Task Flush()
            {
                await WriteRowGroupAsync(writer, rowGroup);
                rowGroup.Clear();
            }

            foreach (var group in Log.InBatchOrder(bin.Files))
            {
                await foreach (var rows in ReadInOrderAsync(group, cancellationToken))
                {
                    foreach (var row in rows)
                    {
                        bounds.Include(row);
                        starts.Add(row.StartTimeMicros);
                        ends.Add(row.EndTimeMicros);
                        rowGroup.Add(row);
                        if (rowGroup.Count == rowGroupRows)
                            await Flush();
                    }
                }
            }

            if (rowGroup.Count > 0)
                await Flush();
            if (starts.Count != expected)
                throw new DeltaTableException($"{Name}: the files of batches {bin.First} to {bin.Last} hold {starts.Count} rows but their statistics say {expected}");
            bounds.AddTo(stats);
            // The timestamps are read once the file is written, to correct its statistics.
            timestamps.Add(new TimestampValues("start_time", [.. starts]));
            timestamps.Add(new TimestampValues("end_time", [.. ends]));
        }

        return new BatchFile(checked((int)expected), stats, Write, timestamps);
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
    /// Every row of the latest version in (batch_number, user_id, start_time) order, read a batch (or a compacted
    /// file's row group) at a time: the files' batch_number statistics order them, so a reader that stops early reads
    /// only the batches it shows, and memory holds one batch's rows.
    /// </summary>
    public async IAsyncEnumerable<SessionRecord> ReadInBatchOrderAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (!Delta.Exists)
            yield break;
        foreach (var group in Log.InBatchOrder(Delta.LoadSnapshot().Files))
        {
            await foreach (var rows in ReadInOrderAsync(group, cancellationToken))
            {
                foreach (var row in rows)
                    yield return row;
            }
        }
    }

    /// <summary>
    /// The rows of one group of files in (batch_number, user_id, start_time) order, in chunks. A single file is read a
    /// row group at a time: a batch's file has one, and a compacted file was written in that order.
    /// </summary>
    private async IAsyncEnumerable<List<SessionRecord>> ReadInOrderAsync(BatchFiles group, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (group.Files.Count == 1)
        {
            await foreach (var rows in ReadRowGroupsAsync(group.Files[0].Path, group.Files[0].Size, cancellationToken))
            {
                rows.Sort(InBatchOrder);
                yield return rows;
            }

            yield break;
        }

        var all = new List<SessionRecord>();
        foreach (var file in group.Files)
            all.AddRange(await ReadFileAsync(file.Path, file.Size, cancellationToken));
        all.Sort(InBatchOrder);
        yield return all;
    }

    private static int InBatchOrder(SessionRecord a, SessionRecord b) =>
        a.BatchNumber != b.BatchNumber ? a.BatchNumber.CompareTo(b.BatchNumber)
        : a.UserId != b.UserId ? a.UserId.CompareTo(b.UserId)
        : a.StartTimeMicros.CompareTo(b.StartTimeMicros);

    /// <summary>
    /// The rows batch <paramref name="batch"/> committed, as the latest version holds them: from the files whose batch
    /// range takes it in (its own, or a compacted one). A rewind takes later batches' rows out of the latest version,
    /// so a batch taken back reads as empty until it is committed again.
    /// </summary>
    public async Task<List<SessionRecord>> ReadBatchAsync(long batch, CancellationToken cancellationToken = default)
    {
        if (!Delta.Exists)
            return [];
        var rows = new List<SessionRecord>();
        foreach (var file in Delta.LoadSnapshot().Files)
        {
            var (first, last) = Log.BatchRangeOf(file);
            if (batch < first || batch > last)
                continue;
            await foreach (var group in ReadRowGroupsAsync(file.Path, file.Size, cancellationToken))
                rows.AddRange(first == last ? group : group.Where(r => r.BatchNumber == batch));
        }

        return rows;
    }

    private async Task<List<SessionRecord>> ReadFileAsync(string logPath, long loggedSize, CancellationToken cancellationToken)
    {
        var rows = new List<SessionRecord>();
        await foreach (var group in ReadRowGroupsAsync(logPath, loggedSize, cancellationToken))
            rows.AddRange(group);
        return rows;
    }

    private async IAsyncEnumerable<List<SessionRecord>> ReadRowGroupsAsync(string logPath, long loggedSize, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var path = Delta.DataFilePath(logPath);
        await using var stream = ParquetFiles.OpenLogged(Name, path, loggedSize);
        await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken);
        DataField Field(string name) => reader.Schema.DataFields.FirstOrDefault(f => f.Name == name)
            ?? throw new DeltaTableException($"{Name}/{Path.GetFileName(path)}: has no column '{name}'");
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
            var rows = new List<SessionRecord>(n);
            for (var i = 0; i < n; i++)
                rows.Add(new SessionRecord(ids[i], pages[i], batches[i], Timestamps.ToMicros(starts[i]), Timestamps.ToMicros(ends[i]), counts[i]));
            yield return rows;
        }
    }

    /// <summary>The least and greatest value of each column a sessions file's statistics carry, taken as its rows go by.</summary>
    private struct ColumnBounds
    {
        private LongBounds _users;
        private LongBounds _batches;
        private LongBounds _starts;
        private LongBounds _ends;
        private LongBounds _counts;

        public void Include(SessionRecord row)
        {
            _users.Include(row.UserId);
            _batches.Include(row.BatchNumber);
            _starts.Include(row.StartTimeMicros);
            _ends.Include(row.EndTimeMicros);
            _counts.Include(row.VisitCount);
        }

        public readonly void AddTo(FileStats stats) =>
            stats.Long("user_id", _users).NoNulls("concatenated_pages").Long("batch_number", _batches)
                .Timestamp("start_time", _starts).Timestamp("end_time", _ends).Long("visit_count", _counts);
    }
}

using Parquet;
using Parquet.Schema;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Parquet;

namespace Sessionization.Persistence.Tables;

/// <summary>The <c>quarantine</c> table: bad visits with the reason, one commit per batch that had any.</summary>
public sealed class QuarantineTable
{
    public const string DirectoryName = "quarantine";

    private readonly DataField[] _columns =
    [
        new DataField<long>("batch_number", false),
        new DataField<string>("source_file", false),
        new DataField<long>("row", true),
        new DataField<long>("user_id", true),
        new DateTimeDataField("visit_time", DateTimeFormat.Timestamp, true, DateTimeTimeUnit.Micros, true),
        new DataField<string>("page", true),
        new DataField<string>("reason", false),
    ];

    private readonly ParquetSchema _schema;

    private QuarantineTable(string path, int checkpointInterval)
    {
        _schema = new ParquetSchema(_columns);
        Delta = new DeltaTable(path, DirectoryName) { CheckpointInterval = checkpointInterval };
        Schema = new DeltaSchema([
            new DeltaField("batch_number", "long", false),
            new DeltaField("source_file", "string", false),
            new DeltaField("row", "long", true),
            new DeltaField("user_id", "long", true),
            new DeltaField("visit_time", "timestamp", true),
            new DeltaField("page", "string", true),
            new DeltaField("reason", "string", false),
        ]);
        Log = new BatchTableLog(Delta, Schema);
    }

    public DeltaTable Delta { get; }

    public DeltaSchema Schema { get; }

    public BatchTableLog Log { get; }

    public static QuarantineTable In(string baseDirectory, int checkpointInterval = DeltaTable.DefaultCheckpointInterval) =>
        new(Path.Combine(baseDirectory, DirectoryName), checkpointInterval);

    /// <summary>Commits the batch's quarantined rows; a batch without any writes nothing.</summary>
    public Task<bool> CommitBatchAsync(long batch, IReadOnlyList<QuarantinedVisit> rows, PipelineIdentity pipeline, BatchProvenance? provenance = null, Func<Task>? beforeCommit = null)
    {
        if (rows.Count == 0)
            return Task.FromResult(false);
        var stats = new FileStats(rows.Count)
            .Long("batch_number", rows.Select(r => (long?)r.BatchNumber))
            .Strings("source_file", rows.Select(r => r.SourceFile))
            .Long("row", rows.Select(r => r.Row))
            .Long("user_id", rows.Select(r => r.UserId))
            .Timestamp("visit_time", rows.Select(r => r.VisitTimeMicros))
            .Strings("page", rows.Select(r => r.Page))
            .Strings("reason", rows.Select(r => r.Reason));
        var times = new TimestampValues(
            "visit_time", [.. rows.Select(r => r.VisitTimeMicros ?? 0)], [.. rows.Select(r => r.VisitTimeMicros is null)]);
        return Log.CommitBatchAsync(batch, new BatchFile(rows.Count, stats, s => WriteFileAsync(s, rows), [times]), pipeline, provenance, beforeCommit: beforeCommit);
    }

    private async Task WriteFileAsync(Stream stream, IReadOnlyList<QuarantinedVisit> rows)
    {
        await using var writer = await ParquetWriter.CreateAsync(_schema, stream, ParquetFiles.WriteOptions);
        using var group = writer.CreateRowGroup();
        await group.WriteAsync<long>(_columns[0], rows.Select(r => r.BatchNumber).ToArray());
        await group.WriteAsync(_columns[1], rows.Select(r => r.SourceFile).ToArray());
        await group.WriteAsync<long>(_columns[2], rows.Select(r => r.Row).ToArray());
        await group.WriteAsync<long>(_columns[3], rows.Select(r => r.UserId).ToArray());
        await group.WriteAsync<DateTime>(_columns[4], rows.Select(r => r.VisitTimeMicros is { } t ? Timestamps.ToDateTime(t) : (DateTime?)null).ToArray());
        await group.WriteAsync(_columns[5], rows.Select(r => r.Page).ToArray());
        await group.WriteAsync(_columns[6], rows.Select(r => r.Reason).ToArray());
    }

    /// <summary>Every row of the table at its latest version, or at <paramref name="version"/> (time travel).</summary>
    public async Task<List<QuarantinedVisit>> ReadAllAsync(long? version = null)
    {
        if (!Delta.Exists)
            return [];
        var rows = new List<QuarantinedVisit>();
        foreach (var file in Delta.LoadSnapshot(version).Files)
        {
            await using var stream = ParquetFiles.OpenLogged(Delta.Name, Delta.DataFilePath(file.Path), file.Size);
            await using var reader = await ParquetReader.CreateAsync(stream);
            DataField Field(string name) => reader.Schema.DataFields.First(f => f.Name == name);
            for (var g = 0; g < reader.RowGroupCount; g++)
            {
                using var group = reader.OpenRowGroupReader(g);
                var n = (int)group.RowCount;
                var batches = new long[n];
                var sources = new string[n];
                var rowNumbers = new long?[n];
                var users = new long?[n];
                var times = new DateTime?[n];
                var pages = new string[n];
                var reasons = new string[n];
                await group.ReadAsync<long>(Field("batch_number"), batches);
                await group.ReadAsync(Field("source_file"), sources);
                await group.ReadAsync<long>(Field("row"), rowNumbers);
                await group.ReadAsync<long>(Field("user_id"), users);
                await group.ReadAsync<DateTime>(Field("visit_time"), times);
                await group.ReadAsync(Field("page"), pages);
                await group.ReadAsync(Field("reason"), reasons);
                for (var i = 0; i < n; i++)
                {
                    rows.Add(new QuarantinedVisit(
                        batches[i], sources[i], rowNumbers[i], users[i], times[i] is { } t ? Timestamps.ToMicros(t) : null, pages[i], reasons[i]));
                }
            }
        }

        return rows;
    }
}

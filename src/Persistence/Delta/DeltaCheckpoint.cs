using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Parquet.Serialization;

namespace Sessionization.Persistence.Delta;

/// <summary>
/// Writes classic (V1, single-file) Delta checkpoints: <c>n.checkpoint.parquet</c> with the table's whole state at
/// version n (protocol, metaData, transaction ids, live files and the tombstones a vacuum still needs) and the
/// <c>_last_checkpoint</c> pointer, in the column layout Spark writes (the golden tables' checkpoints are the
/// reference), so Spark, delta-rs, DuckDB and this reader can all start from it instead of replaying every commit.
/// </summary>
public static class DeltaCheckpoint
{
    /// <summary>How long removed files stay in a checkpoint as tombstones (Delta's delta.deletedFileRetentionDuration default).</summary>
    public static readonly TimeSpan TombstoneRetention = TimeSpan.FromDays(7);

    public static string FileName(long version) => $"{version:D20}.checkpoint.parquet";

    public const string LastCheckpointFile = "_last_checkpoint";

    /// <summary>Writes the checkpoint of <paramref name="snapshot"/>; each file appears whole (written aside, then renamed).</summary>
    public static void Write(DeltaTable table, DeltaSnapshot snapshot, long commitTimestamp)
    {
        var rows = new List<CheckpointRow>
        {
            new() { Protocol = ProtocolRow.From(snapshot.Protocol) },
            new() { MetaData = MetadataRow.From(snapshot.Metadata) },
        };
        rows.AddRange(snapshot.Transactions.Values.OrderBy(t => t.AppId, StringComparer.Ordinal)
            .Select(t => new CheckpointRow { Txn = new TxnRow { AppId = t.AppId, Version = t.Version, LastUpdated = t.LastUpdated } }));
        rows.AddRange(snapshot.Files.Select(f => new CheckpointRow { Add = AddRow.From(f) }));
        var expiry = commitTimestamp - (long)TombstoneRetention.TotalMilliseconds;
        rows.AddRange(snapshot.Tombstones.Where(r => (r.DeletionTimestamp ?? commitTimestamp) >= expiry)
            .Select(r => new CheckpointRow { Remove = new RemoveRow { Path = r.Path, DeletionTimestamp = r.DeletionTimestamp, DataChange = false } }));

        var path = Path.Combine(table.LogDirectory, FileName(snapshot.Version));
        var temp = Path.Combine(table.LogDirectory, $".{FileName(snapshot.Version)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                ParquetSerializer.SerializeAsync(rows, stream).GetAwaiter().GetResult();
                stream.Flush(flushToDisk: true);
            }

            // A checkpoint of a version holds that version's state whoever writes it, so replacing one is harmless.
            File.Move(temp, path, overwrite: true);
            var last = new JsonObject
            {
                ["version"] = snapshot.Version,
                ["size"] = rows.Count,
                ["sizeInBytes"] = new FileInfo(path).Length,
                ["numOfAddFiles"] = snapshot.Files.Count,
            };
            var lastPath = Path.Combine(table.LogDirectory, LastCheckpointFile);
            var lastTemp = lastPath + $".{Guid.NewGuid():N}.tmp";
            File.WriteAllText(lastTemp, last.ToJsonString());
            File.Move(lastTemp, lastPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
                File.Delete(temp);
        }
    }

    // The row shapes below mirror Spark's checkpoint schema; every column is nullable, and each row sets one action.
    private sealed class CheckpointRow
    {
        [JsonPropertyName("txn")]
        public TxnRow? Txn { get; set; }

        [JsonPropertyName("add")]
        public AddRow? Add { get; set; }

        [JsonPropertyName("remove")]
        public RemoveRow? Remove { get; set; }

        [JsonPropertyName("metaData")]
        public MetadataRow? MetaData { get; set; }

        [JsonPropertyName("protocol")]
        public ProtocolRow? Protocol { get; set; }
    }

    private sealed class TxnRow
    {
        [JsonPropertyName("appId")]
        public string? AppId { get; set; }

        [JsonPropertyName("version")]
        public long? Version { get; set; }

        [JsonPropertyName("lastUpdated")]
        public long? LastUpdated { get; set; }
    }

    private sealed class AddRow
    {
        [JsonPropertyName("path")]
        public string? Path { get; set; }

        [JsonPropertyName("partitionValues")]
        public Dictionary<string, string?>? PartitionValues { get; set; }

        [JsonPropertyName("size")]
        public long? Size { get; set; }

        [JsonPropertyName("modificationTime")]
        public long? ModificationTime { get; set; }

        [JsonPropertyName("dataChange")]
        public bool? DataChange { get; set; }

        [JsonPropertyName("tags")]
        public Dictionary<string, string?>? Tags { get; set; }

        [JsonPropertyName("stats")]
        public string? Stats { get; set; }

        // A checkpoint's adds are the state, not a change: Spark writes dataChange false there.
        public static AddRow From(AddFile f) => new()
        {
            Path = f.Path,
            PartitionValues = f.PartitionValues.ToDictionary(p => p.Key, p => p.Value),
            Size = f.Size,
            ModificationTime = f.ModificationTime,
            DataChange = false,
            Stats = f.Stats,
        };
    }

    private sealed class RemoveRow
    {
        [JsonPropertyName("path")]
        public string? Path { get; set; }

        [JsonPropertyName("deletionTimestamp")]
        public long? DeletionTimestamp { get; set; }

        [JsonPropertyName("dataChange")]
        public bool? DataChange { get; set; }
    }

    private sealed class FormatRow
    {
        [JsonPropertyName("provider")]
        public string? Provider { get; set; }

        [JsonPropertyName("options")]
        public Dictionary<string, string?>? Options { get; set; }
    }

    private sealed class MetadataRow
    {
        [JsonPropertyName("id")]
        public string? Id { get; set; }

        [JsonPropertyName("format")]
        public FormatRow? Format { get; set; }

        [JsonPropertyName("schemaString")]
        public string? SchemaString { get; set; }

        [JsonPropertyName("partitionColumns")]
        public List<string?>? PartitionColumns { get; set; }

        [JsonPropertyName("configuration")]
        public Dictionary<string, string?>? Configuration { get; set; }

        [JsonPropertyName("createdTime")]
        public long? CreatedTime { get; set; }

        public static MetadataRow From(MetadataAction m) => new()
        {
            Id = m.Id,
            Format = new FormatRow { Provider = "parquet", Options = [] },
            SchemaString = m.SchemaString,
            PartitionColumns = [.. m.PartitionColumns],
            Configuration = m.Configuration.ToDictionary(p => p.Key, p => (string?)p.Value),
            CreatedTime = m.CreatedTime,
        };
    }

    private sealed class ProtocolRow
    {
        [JsonPropertyName("minReaderVersion")]
        public int? MinReaderVersion { get; set; }

        [JsonPropertyName("minWriterVersion")]
        public int? MinWriterVersion { get; set; }

        [JsonPropertyName("readerFeatures")]
        public List<string?>? ReaderFeatures { get; set; }

        [JsonPropertyName("writerFeatures")]
        public List<string?>? WriterFeatures { get; set; }

        // Feature lists are written only for the protocol versions that have them; otherwise they must be null.
        public static ProtocolRow From(ProtocolAction p) => new()
        {
            MinReaderVersion = p.MinReaderVersion,
            MinWriterVersion = p.MinWriterVersion,
            ReaderFeatures = p.MinReaderVersion >= 3 ? [.. p.ReaderFeatures] : null,
            WriterFeatures = p.MinWriterVersion >= 7 ? [.. p.WriterFeatures] : null,
        };
    }
}

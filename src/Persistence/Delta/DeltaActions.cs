using System.Text.Json.Nodes;

namespace Sessionization.Persistence.Delta;

/// <summary>An action of a Delta commit (the append-only subset of the protocol, plus remove).</summary>
public abstract record DeltaAction;

public sealed record ProtocolAction(int MinReaderVersion, int MinWriterVersion, IReadOnlyList<string> ReaderFeatures, IReadOnlyList<string> WriterFeatures) : DeltaAction
{
    public static ProtocolAction AppendOnlyDefault { get; } = new(1, 2, [], []);
}

public sealed record MetadataAction(
    string Id,
    string SchemaString,
    IReadOnlyList<string> PartitionColumns,
    IReadOnlyDictionary<string, string> Configuration,
    long? CreatedTime) : DeltaAction
{
    public DeltaSchema Schema => DeltaSchema.Parse(SchemaString);
}

public sealed record AddFile(
    string Path,
    IReadOnlyDictionary<string, string?> PartitionValues,
    long Size,
    long ModificationTime,
    bool DataChange,
    string? Stats,
    bool HasDeletionVector) : DeltaAction;

public sealed record RemoveFile(string Path, long? DeletionTimestamp, bool DataChange) : DeltaAction;

public sealed record TxnAction(string AppId, long Version, long? LastUpdated) : DeltaAction;

public sealed record CommitInfoAction(JsonObject Content) : DeltaAction;

/// <summary>Actions this reader does not act on but may safely pass over (e.g. domainMetadata, cdc).</summary>
public sealed record OtherAction(string Kind) : DeltaAction;

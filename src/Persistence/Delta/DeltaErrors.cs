namespace Sessionization.Persistence.Delta;

/// <summary>A Delta table that cannot be read or written as asked; the message names the table and the cause.</summary>
public class DeltaTableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The table uses a protocol version or feature this reader does not support.</summary>
public sealed class DeltaUnsupportedException(string message) : DeltaTableException(message);

/// <summary>Another writer committed the same version first.</summary>
public sealed class DeltaConcurrentCommitException(string table, long version)
    : DeltaTableException($"{table}: version {version} was committed by another writer")
{
    public long Version { get; } = version;
}

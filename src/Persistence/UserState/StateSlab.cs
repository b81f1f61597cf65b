namespace Sessionization.Persistence.UserState;

/// <summary>
/// Encoded states laid end to end in a few large arrays: a batch keeps the states of a few hundred thousand users
/// until the next batch has stepped them, and as one array each they were as many objects for every collection to
/// trace and move. A state taken from here holds its array alive, so a slab lives as long as any state in it.
/// </summary>
public sealed class StateSlab
{
    private const int ChunkBytes = 1 << 20;

    private byte[] _chunk = [];
    private int _used;

    /// <summary>A copy of <paramref name="bytes"/> in the slab.</summary>
    public ReadOnlyMemory<byte> Add(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > _chunk.Length - _used)
        {
            _chunk = GC.AllocateUninitializedArray<byte>(Math.Max(ChunkBytes, bytes.Length));
            _used = 0;
        }

        bytes.CopyTo(_chunk.AsSpan(_used));
        var copy = new ReadOnlyMemory<byte>(_chunk, _used, bytes.Length);
        _used += bytes.Length;
        return copy;
    }
}

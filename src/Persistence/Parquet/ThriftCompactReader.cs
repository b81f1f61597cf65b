namespace Sessionization.Persistence.Parquet;

/// <summary>
/// Walks a Thrift compact-protocol structure (a Parquet footer or page header) field by field. It reads only
/// what the statistics correction needs and skips everything else, so unknown or newer fields pass through.
/// </summary>
internal ref struct ThriftCompactReader(ReadOnlySpan<byte> data)
{
    public const byte Stop = 0, True = 1, False = 2, Byte = 3, I16 = 4, I32 = 5, I64 = 6, Double = 7, Binary = 8, List = 9, Set = 10, Map = 11, Struct = 12;

    private readonly ReadOnlySpan<byte> _data = data;
    private short _lastField;

    public int Position { get; private set; }

    /// <summary>The next field of the current struct; false at its end.</summary>
    public bool NextField(out short id, out byte type)
    {
        var header = _data[Position++];
        if (header == Stop)
        {
            id = 0;
            type = Stop;
            return false;
        }

        type = (byte)(header & 0x0f);
        var delta = header >> 4;
        id = delta == 0 ? (short)ReadZigzag() : (short)(_lastField + delta);
        _lastField = id;
        return true;
    }

    /// <summary>Enters a nested struct; returns the field id to give back to <see cref="EndStruct"/>.</summary>
    public short BeginStruct()
    {
        var outer = _lastField;
        _lastField = 0;
        return outer;
    }

    public void EndStruct(short outer) => _lastField = outer;

    public long ReadInteger() => ReadZigzag();

    public (int Offset, int Length) ReadBinary()
    {
        var length = checked((int)ReadVarint());
        var offset = Position;
        Position += length;
        return (offset, length);
    }

    public (int Count, byte ElementType) ReadListHeader()
    {
        var header = _data[Position++];
        var count = header >> 4;
        if (count == 15)
            count = checked((int)ReadVarint());
        return (count, (byte)(header & 0x0f));
    }

    public void Skip(byte type)
    {
        switch (type)
        {
            case True or False:
                break;
            case Byte:
                Position++;
                break;
            case I16 or I32 or I64:
                ReadVarint();
                break;
            case Double:
                Position += 8;
                break;
            case Binary:
                ReadBinary();
                break;
            case List or Set:
                var (count, element) = ReadListHeader();
                for (var i = 0; i < count; i++)
                {
                    // Booleans in a collection take a byte each rather than living in the field header.
                    if (element is True or False)
                        Position++;
                    else
                        Skip(element);
                }

                break;
            case Map:
                var size = checked((int)ReadVarint());
                if (size == 0)
                    break;
                var kinds = _data[Position++];
                for (var i = 0; i < size; i++)
                {
                    Skip((byte)(kinds >> 4));
                    Skip((byte)(kinds & 0x0f));
                }

                break;
            case Struct:
                var outer = BeginStruct();
                while (NextField(out _, out var fieldType))
                    Skip(fieldType);
                EndStruct(outer);
                break;
            default:
                throw new InvalidDataException($"unknown Thrift compact type {type} at byte {Position}");
        }
    }

    private ulong ReadVarint()
    {
        ulong value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            var b = _data[Position++];
            value |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
                return value;
        }

        throw new InvalidDataException($"malformed varint at byte {Position}");
    }

    private long ReadZigzag()
    {
        var v = ReadVarint();
        return (long)(v >> 1) ^ -(long)(v & 1);
    }
}

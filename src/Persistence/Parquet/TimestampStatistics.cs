using System.Buffers.Binary;
using System.Text;

namespace Sessionization.Persistence.Parquet;

/// <summary>The values of one timestamp column as written, in row order: UTC microseconds, and which rows are null.</summary>
public readonly record struct TimestampValues(string Column, long[] Micros, bool[]? IsNull = null)
{
    public bool HasValue(int row) => IsNull is null || !IsNull[row];
}

/// <summary>
/// Puts the true statistics on the <c>TIMESTAMP(MICROS)</c> columns of a Parquet file Parquet.Net has just written.
/// Parquet.Net 6 encodes a timestamp's minimum and maximum in milliseconds whatever the column's unit
/// (aloneguid/parquet-dotnet issue 769), so a reader that prunes row groups or pages on statistics (DuckDB,
/// Spark, Trino, delta-rs) skips rows it must read. The statistics are corrected in place, in the footer's
/// column chunks and in every data page header: each is an 8-byte little-endian value of the same length, so
/// no offset in the file moves. Every timestamp column of the file must be given, so that a column added later
/// cannot quietly ship wrong statistics.
/// </summary>
public static class TimestampStatistics
{
    private const int Int64Type = 2;
    private const int TimestampMicrosConvertedType = 10;
    private const int TimestampMillisConvertedType = 9;
    private const int DataPage = 0, DataPageV2 = 3;
    private static readonly byte[] Magic = "PAR1"u8.ToArray();

    /// <summary>Corrects the statistics of <paramref name="file"/> (a complete Parquet file, readable, writable and seekable).</summary>
    public static void Correct(Stream file, params TimestampValues[] columns)
    {
        var footer = ReadFooter(file, out var footerStart);
        var layout = ParseFooter(footer);
        var byName = columns.ToDictionary(c => c.Column, StringComparer.Ordinal);
        foreach (var (leaf, index) in layout.Leaves.Select((l, i) => (l, i)))
        {
            if (!leaf.IsMicrosTimestamp)
                continue;
            if (!byName.TryGetValue(leaf.Path, out var values))
                throw new InvalidOperationException($"timestamp column '{leaf.Path}' was written without its values, so its statistics cannot be corrected");
            long firstRow = 0;
            foreach (var group in layout.RowGroups)
            {
                var chunk = group.Chunks[index];
                var rows = checked((int)group.Rows);
                if (firstRow + rows > values.Micros.Length)
                    throw new InvalidOperationException($"timestamp column '{leaf.Path}': the file has more rows than the {values.Micros.Length} values given");
                Patch(footer, chunk.Statistics, values, (int)firstRow, rows);
                CorrectPages(file, chunk, values, (int)firstRow);
                firstRow += rows;
            }
        }

        file.Position = footerStart;
        file.Write(footer);
        file.Position = file.Length;
    }

    private static byte[] ReadFooter(Stream file, out long footerStart)
    {
        Span<byte> tail = stackalloc byte[8];
        file.Position = file.Length - 8;
        file.ReadExactly(tail);
        if (!tail[4..].SequenceEqual(Magic))
            throw new InvalidDataException("not a Parquet file: no PAR1 at the end");
        var length = BinaryPrimitives.ReadInt32LittleEndian(tail);
        footerStart = file.Length - 8 - length;
        var footer = new byte[length];
        file.Position = footerStart;
        file.ReadExactly(footer);
        return footer;
    }

    private sealed record Leaf(string Path, bool IsMicrosTimestamp);

    /// <summary>Where a statistics struct keeps its four bounds (max, min, max_value, min_value): offsets of 8-byte values, -1 where absent.</summary>
    private sealed class StatisticsAt
    {
        public int Max = -1, Min = -1, MaxValue = -1, MinValue = -1;

        // Other columns' statistics are read on the way (strings have any length); only a timestamp's must be 8 bytes.
        public bool NotEightBytes;
    }

    private sealed record Chunk(StatisticsAt Statistics, long FirstPageOffset, long CompressedSize);

    private sealed record RowGroup(long Rows, List<Chunk> Chunks);

    private sealed record FooterLayout(List<Leaf> Leaves, List<RowGroup> RowGroups);

    private static FooterLayout ParseFooter(byte[] footer)
    {
        var leaves = new List<Leaf>();
        var groups = new List<RowGroup>();
        var r = new ThriftCompactReader(footer);
        while (r.NextField(out var id, out var type))
        {
            if (id == 2 && type == ThriftCompactReader.List)
                ReadSchema(ref r, footer, leaves);
            else if (id == 4 && type == ThriftCompactReader.List)
                ReadRowGroups(ref r, groups);
            else
                r.Skip(type);
        }

        return new FooterLayout(leaves, groups);
    }

    /// <summary>The leaf columns in schema order, which is the order of every row group's column chunks.</summary>
    private static void ReadSchema(ref ThriftCompactReader r, byte[] footer, List<Leaf> leaves)
    {
        var (count, _) = r.ReadListHeader();
        // Each group's remaining children, to build dotted paths for nested columns.
        var path = new List<(string Name, int Remaining)>();
        for (var i = 0; i < count; i++)
        {
            string name = "";
            int? physical = null, converted = null, children = null;
            var micros = false;
            var outer = r.BeginStruct();
            while (r.NextField(out var id, out var type))
            {
                switch (id)
                {
                    case 1 when type == ThriftCompactReader.I32:
                        physical = (int)r.ReadInteger();
                        break;
                    case 4 when type == ThriftCompactReader.Binary:
                        var (offset, length) = r.ReadBinary();
                        name = Encoding.UTF8.GetString(footer, offset, length);
                        break;
                    case 5 when type == ThriftCompactReader.I32:
                        children = (int)r.ReadInteger();
                        break;
                    case 6 when type == ThriftCompactReader.I32:
                        converted = (int)r.ReadInteger();
                        break;
                    case 10 when type == ThriftCompactReader.Struct:
                        micros = ReadTimestampUnit(ref r) == 2;
                        break;
                    default:
                        r.Skip(type);
                        break;
                }
            }

            r.EndStruct(outer);
            if (i == 0)
                continue; // the root
            if (children is > 0)
            {
                path.Add((name, children.Value));
                continue;
            }

            var full = string.Join('.', path.Select(p => p.Name).Append(name));
            var isTimestamp = physical == Int64Type && (micros || converted == TimestampMicrosConvertedType) && converted != TimestampMillisConvertedType;
            leaves.Add(new Leaf(full, isTimestamp));
            // Close every group whose last child this was.
            for (var g = path.Count - 1; g >= 0; g--)
            {
                path[g] = (path[g].Name, path[g].Remaining - 1);
                if (path[g].Remaining > 0)
                    break;
                path.RemoveAt(g);
            }
        }
    }

    /// <summary>For a LogicalType union: the TIMESTAMP's unit (1 millis, 2 micros, 3 nanos), or 0 for another type.</summary>
    private static int ReadTimestampUnit(ref ThriftCompactReader r)
    {
        var unit = 0;
        var outer = r.BeginStruct();
        while (r.NextField(out var id, out var type))
        {
            if (id != 8 || type != ThriftCompactReader.Struct)
            {
                r.Skip(type);
                continue;
            }

            var timestamp = r.BeginStruct();
            while (r.NextField(out var tid, out var ttype))
            {
                if (tid != 2 || ttype != ThriftCompactReader.Struct)
                {
                    r.Skip(ttype);
                    continue;
                }

                var union = r.BeginStruct();
                while (r.NextField(out var uid, out var utype))
                {
                    unit = uid;
                    r.Skip(utype);
                }

                r.EndStruct(union);
            }

            r.EndStruct(timestamp);
        }

        r.EndStruct(outer);
        return unit;
    }

    private static void ReadRowGroups(ref ThriftCompactReader r, List<RowGroup> groups)
    {
        var (count, _) = r.ReadListHeader();
        for (var i = 0; i < count; i++)
        {
            long rows = 0;
            var chunks = new List<Chunk>();
            var outer = r.BeginStruct();
            while (r.NextField(out var id, out var type))
            {
                if (id == 1 && type == ThriftCompactReader.List)
                {
                    var (columns, _) = r.ReadListHeader();
                    for (var c = 0; c < columns; c++)
                        chunks.Add(ReadColumnChunk(ref r));
                }
                else if (id == 3 && type == ThriftCompactReader.I64)
                {
                    rows = r.ReadInteger();
                }
                else
                {
                    r.Skip(type);
                }
            }

            r.EndStruct(outer);
            groups.Add(new RowGroup(rows, chunks));
        }
    }

    private static Chunk ReadColumnChunk(ref ThriftCompactReader r)
    {
        var statistics = new StatisticsAt();
        long dataPage = 0, compressed = 0;
        long? dictionaryPage = null;
        var outer = r.BeginStruct();
        while (r.NextField(out var id, out var type))
        {
            if (id != 3 || type != ThriftCompactReader.Struct)
            {
                r.Skip(type);
                continue;
            }

            var meta = r.BeginStruct();
            while (r.NextField(out var mid, out var mtype))
            {
                switch (mid)
                {
                    case 7:
                        compressed = r.ReadInteger();
                        break;
                    case 9:
                        dataPage = r.ReadInteger();
                        break;
                    case 11:
                        dictionaryPage = r.ReadInteger();
                        break;
                    case 12 when mtype == ThriftCompactReader.Struct:
                        ReadStatistics(ref r, statistics);
                        break;
                    default:
                        r.Skip(mtype);
                        break;
                }
            }

            r.EndStruct(meta);
        }

        r.EndStruct(outer);
        return new Chunk(statistics, dictionaryPage is > 0 ? Math.Min(dictionaryPage.Value, dataPage) : dataPage, compressed);
    }

    private static void ReadStatistics(ref ThriftCompactReader r, StatisticsAt at)
    {
        var outer = r.BeginStruct();
        while (r.NextField(out var id, out var type))
        {
            if (type != ThriftCompactReader.Binary || id is not (1 or 2 or 5 or 6))
            {
                r.Skip(type);
                continue;
            }

            var (offset, length) = r.ReadBinary();
            if (length != 8)
            {
                at.NotEightBytes = true;
                continue;
            }

            switch (id)
            {
                case 1: at.Max = offset; break;
                case 2: at.Min = offset; break;
                case 5: at.MaxValue = offset; break;
                case 6: at.MinValue = offset; break;
            }
        }

        r.EndStruct(outer);
    }

    /// <summary>Walks the chunk's pages, correcting each data page's statistics for the rows it holds.</summary>
    private static void CorrectPages(Stream file, Chunk chunk, TimestampValues values, int firstRow)
    {
        var position = chunk.FirstPageOffset;
        var end = chunk.FirstPageOffset + chunk.CompressedSize;
        var row = firstRow;
        var buffer = new byte[4096];
        while (position < end)
        {
            file.Position = position;
            var available = (int)Math.Min(buffer.Length, file.Length - position);
            file.ReadExactly(buffer, 0, available);
            var r = new ThriftCompactReader(buffer.AsSpan(0, available));
            int pageType = -1, compressedSize = 0, pageValues = 0;
            var statistics = new StatisticsAt();
            while (r.NextField(out var id, out var type))
            {
                switch (id)
                {
                    case 1:
                        pageType = (int)r.ReadInteger();
                        break;
                    case 3:
                        compressedSize = (int)r.ReadInteger();
                        break;
                    case 5 or 8 when type == ThriftCompactReader.Struct:
                        pageValues = ReadDataPageHeader(ref r, statistics, id == 5 ? (short)5 : (short)8);
                        break;
                    default:
                        r.Skip(type);
                        break;
                }
            }

            var headerLength = r.Position;
            if (pageType is DataPage or DataPageV2)
            {
                Patch(buffer, statistics, values, row, pageValues);
                file.Position = position;
                file.Write(buffer, 0, headerLength);
                row += pageValues;
            }

            position += headerLength + compressedSize;
        }
    }

    /// <summary>Reads a (v1 or v2) data page header: its value count, and where its statistics are.</summary>
    private static int ReadDataPageHeader(ref ThriftCompactReader r, StatisticsAt statistics, short statisticsField)
    {
        var values = 0;
        var outer = r.BeginStruct();
        while (r.NextField(out var id, out var type))
        {
            if (id == 1 && type == ThriftCompactReader.I32)
                values = (int)r.ReadInteger();
            else if (id == statisticsField && type == ThriftCompactReader.Struct)
                ReadStatistics(ref r, statistics);
            else
                r.Skip(type);
        }

        r.EndStruct(outer);
        return values;
    }

    private static void Patch(byte[] buffer, StatisticsAt at, TimestampValues values, int firstRow, int rows)
    {
        if (at.NotEightBytes)
            throw new InvalidDataException($"timestamp column '{values.Column}' has a statistic that is not 8 bytes");
        long min = long.MaxValue, max = long.MinValue;
        var end = Math.Min(firstRow + rows, values.Micros.Length);
        for (var i = firstRow; i < end; i++)
        {
            if (!values.HasValue(i))
                continue;
            var v = values.Micros[i];
            if (v < min)
                min = v;
            if (v > max)
                max = v;
        }

        // Bounds written for rows that are all null say nothing a reader uses (every comparison with null is
        // false), so they are left as they are.
        if (min > max)
            return;
        Write(buffer, at.Min, min);
        Write(buffer, at.MinValue, min);
        Write(buffer, at.Max, max);
        Write(buffer, at.MaxValue, max);
    }

    private static void Write(byte[] buffer, int offset, long value)
    {
        if (offset >= 0)
            BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(offset, 8), value);
    }
}

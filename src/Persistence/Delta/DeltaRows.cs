using System.Globalization;
using Parquet.Serialization;

namespace Sessionization.Persistence.Delta;

/// <summary>
/// Reads a whole Delta table as loosely typed rows, partition columns included: for inspecting tables written
/// by other engines, not for the hot path.
/// </summary>
public static class DeltaRows
{
    public static async Task<List<Dictionary<string, object?>>> ReadAsync(DeltaTable table, DeltaSnapshot snapshot)
    {
        var schema = snapshot.Metadata.Schema;
        var rows = new List<Dictionary<string, object?>>();
        foreach (var file in snapshot.Files)
        {
            if (file.HasDeletionVector)
                throw new DeltaUnsupportedException($"{table.Name}: unsupported Delta reader features: deletionVectors ({file.Path})");
            await using var stream = File.OpenRead(table.DataFilePath(file.Path));
            var data = await ParquetSerializer.DeserializeUntypedAsync(stream);
            foreach (var row in data.Data)
            {
                var values = row.ToDictionary(p => p.Key, p => (object?)p.Value, StringComparer.Ordinal);
                // The untyped decoder leaves out null cells; a row has every column of the schema.
                foreach (var field in schema.Fields)
                    values.TryAdd(field.Name, null);
                foreach (var column in snapshot.Metadata.PartitionColumns)
                {
                    file.PartitionValues.TryGetValue(column, out var raw);
                    values[column] = PartitionValue(raw, schema.Find(column)?.Type ?? "string");
                }

                rows.Add(values);
            }
        }

        return rows;
    }

    /// <summary>Decodes a partition value from its string form in the log (the protocol's "Partition Value Serialization").</summary>
    public static object? PartitionValue(string? raw, string type)
    {
        if (raw is null || (raw.Length == 0 && type != "string"))
            return null;
        var c = CultureInfo.InvariantCulture;
        return type switch
        {
            "string" => raw,
            "long" => long.Parse(raw, c),
            "integer" => int.Parse(raw, c),
            "short" => short.Parse(raw, c),
            "byte" => sbyte.Parse(raw, c),
            "boolean" => bool.Parse(raw),
            "double" => double.Parse(raw, c),
            "float" => float.Parse(raw, c),
            "date" => DateOnly.ParseExact(raw, "yyyy-MM-dd", c),
            "timestamp" or "timestamp_ntz" => DateTime.SpecifyKind(
                DateTime.ParseExact(raw.TrimEnd('Z'), ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm:ss.FFFFFF", "yyyy-MM-dd'T'HH:mm:ss.FFFFFF"], c, DateTimeStyles.None),
                DateTimeKind.Utc),
            _ => raw,
        };
    }
}

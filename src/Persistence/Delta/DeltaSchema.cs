using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sessionization.Persistence.Delta;

/// <summary>One top-level column of a Delta schema; <see cref="Type"/> is the Delta type name (long, string, timestamp, ...).</summary>
public sealed record DeltaField(string Name, string Type, bool Nullable);

public sealed record DeltaSchema(IReadOnlyList<DeltaField> Fields)
{
    public static DeltaSchema Parse(string schemaString)
    {
        var root = JsonNode.Parse(schemaString) as JsonObject ?? throw new DeltaTableException("schemaString is not a JSON object");
        var fields = new List<DeltaField>();
        foreach (var node in root["fields"]?.AsArray() ?? [])
        {
            var type = node!["type"];
            // Nested types are kept by kind; this product's tables use primitives only.
            var typeName = type is JsonValue ? type.GetValue<string>() : type?["type"]?.GetValue<string>() ?? "unknown";
            fields.Add(new DeltaField(node["name"]!.GetValue<string>(), typeName, node["nullable"]?.GetValue<bool>() ?? true));
        }

        return new DeltaSchema(fields);
    }

    public string ToJson()
    {
        var fields = new JsonArray();
        foreach (var f in Fields)
            fields.Add(new JsonObject { ["name"] = f.Name, ["type"] = f.Type, ["nullable"] = f.Nullable, ["metadata"] = new JsonObject() });
        return new JsonObject { ["type"] = "struct", ["fields"] = fields }.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }

    public bool Equals(DeltaSchema? other) => other is not null && Fields.SequenceEqual(other.Fields);

    public override int GetHashCode() => Fields.Count;

    public DeltaField? Find(string name) => Fields.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase));
}

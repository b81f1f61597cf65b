using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sessionization.Persistence.Delta;

/// <summary>Reads and writes Delta log actions as newline-delimited JSON, one action per line.</summary>
public static class DeltaJson
{
    public static DeltaAction ParseAction(JsonObject line)
    {
        if (line.Count != 1)
            throw new FormatException("an action line must hold exactly one action");
        var (kind, body) = line.First();
        if (body is not JsonObject o)
            throw new FormatException($"action '{kind}' is not an object");
        return kind switch
        {
            "protocol" => new ProtocolAction(
                Int(o, "minReaderVersion"), Int(o, "minWriterVersion"), Strings(o["readerFeatures"]), Strings(o["writerFeatures"])),
            "metaData" => new MetadataAction(
                Str(o, "id"),
                o["schemaString"]?.GetValue<string>() ?? "{\"type\":\"struct\",\"fields\":[]}",
                Strings(o["partitionColumns"]),
                (o["configuration"] as JsonObject)?.ToDictionary(p => p.Key, p => p.Value?.ToString() ?? "") ?? new Dictionary<string, string>(),
                o["createdTime"]?.GetValue<long>()),
            "add" => new AddFile(
                Str(o, "path"),
                PartitionValues(o["partitionValues"]),
                o["size"]?.GetValue<long>() ?? 0,
                o["modificationTime"]?.GetValue<long>() ?? 0,
                o["dataChange"]?.GetValue<bool>() ?? true,
                o["stats"]?.GetValue<string>(),
                o["deletionVector"] is JsonObject),
            "remove" => new RemoveFile(Str(o, "path"), o["deletionTimestamp"]?.GetValue<long>(), o["dataChange"]?.GetValue<bool>() ?? true),
            "txn" => new TxnAction(Str(o, "appId"), o["version"]!.GetValue<long>(), o["lastUpdated"]?.GetValue<long>()),
            "commitInfo" => new CommitInfoAction(o),
            _ => new OtherAction(kind),
        };
    }

    public static List<DeltaAction> ParseCommit(string text, string fileForErrors)
    {
        var actions = new List<DeltaAction>();
        var lineNumber = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNumber++;
            var line = raw.Trim();
            if (line.Length == 0)
                continue;
            try
            {
                var node = JsonNode.Parse(line) as JsonObject ?? throw new FormatException("not a JSON object");
                actions.Add(ParseAction(node));
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NullReferenceException)
            {
                throw new DeltaTableException($"{fileForErrors}: line {lineNumber} is not a valid Delta action ({e.Message.Split('\n')[0]})", e);
            }
        }

        return actions;
    }

    /// <summary>Serialises actions in a fixed key order, so that the same commit always has the same bytes.</summary>
    public static byte[] WriteCommit(IEnumerable<DeltaAction> actions)
    {
        using var buffer = new MemoryStream();
        foreach (var action in actions)
        {
            using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            {
                w.WriteStartObject();
                WriteAction(w, action);
                w.WriteEndObject();
            }

            buffer.WriteByte((byte)'\n');
        }

        return buffer.ToArray();
    }

    private static void WriteAction(Utf8JsonWriter w, DeltaAction action)
    {
        switch (action)
        {
            case ProtocolAction p:
                w.WriteStartObject("protocol");
                w.WriteNumber("minReaderVersion", p.MinReaderVersion);
                w.WriteNumber("minWriterVersion", p.MinWriterVersion);
                if (p.MinReaderVersion >= 3)
                    WriteStrings(w, "readerFeatures", p.ReaderFeatures);
                if (p.MinWriterVersion >= 7)
                    WriteStrings(w, "writerFeatures", p.WriterFeatures);
                w.WriteEndObject();
                break;
            case MetadataAction m:
                w.WriteStartObject("metaData");
                w.WriteString("id", m.Id);
                w.WriteStartObject("format");
                w.WriteString("provider", "parquet");
                w.WriteStartObject("options");
                w.WriteEndObject();
                w.WriteEndObject();
                w.WriteString("schemaString", m.SchemaString);
                WriteStrings(w, "partitionColumns", m.PartitionColumns);
                w.WriteStartObject("configuration");
                foreach (var (k, v) in m.Configuration.OrderBy(p => p.Key, StringComparer.Ordinal))
                    w.WriteString(k, v);
                w.WriteEndObject();
                if (m.CreatedTime is { } created)
                    w.WriteNumber("createdTime", created);
                w.WriteEndObject();
                break;
            case AddFile a:
                w.WriteStartObject("add");
                w.WriteString("path", a.Path);
                w.WriteStartObject("partitionValues");
                foreach (var (k, v) in a.PartitionValues.OrderBy(p => p.Key, StringComparer.Ordinal))
                    w.WriteString(k, v);
                w.WriteEndObject();
                w.WriteNumber("size", a.Size);
                w.WriteNumber("modificationTime", a.ModificationTime);
                w.WriteBoolean("dataChange", a.DataChange);
                if (a.Stats is not null)
                    w.WriteString("stats", a.Stats);
                w.WriteEndObject();
                break;
            case RemoveFile r:
                w.WriteStartObject("remove");
                w.WriteString("path", r.Path);
                if (r.DeletionTimestamp is { } deleted)
                    w.WriteNumber("deletionTimestamp", deleted);
                w.WriteBoolean("dataChange", r.DataChange);
                w.WriteEndObject();
                break;
            case TxnAction t:
                w.WriteStartObject("txn");
                w.WriteString("appId", t.AppId);
                w.WriteNumber("version", t.Version);
                if (t.LastUpdated is { } updated)
                    w.WriteNumber("lastUpdated", updated);
                w.WriteEndObject();
                break;
            case CommitInfoAction c:
                w.WritePropertyName("commitInfo");
                c.Content.WriteTo(w);
                break;
            default:
                throw new ArgumentException($"cannot write {action.GetType().Name}");
        }
    }

    private static void WriteStrings(Utf8JsonWriter w, string name, IEnumerable<string> values)
    {
        w.WriteStartArray(name);
        foreach (var v in values)
            w.WriteStringValue(v);
        w.WriteEndArray();
    }

    private static string Str(JsonObject o, string name) =>
        o[name]?.GetValue<string>() ?? throw new FormatException($"missing '{name}'");

    private static int Int(JsonObject o, string name) =>
        o[name]?.GetValue<int>() ?? throw new FormatException($"missing '{name}'");

    private static IReadOnlyList<string> Strings(JsonNode? node) =>
        node is JsonArray a ? a.Select(n => n!.GetValue<string>()).ToList() : [];

    private static IReadOnlyDictionary<string, string?> PartitionValues(JsonNode? node) => node switch
    {
        JsonObject o => o.ToDictionary(p => p.Key, p => p.Value?.GetValue<string>()),
        // Checkpoint files decoded from Parquet may present a map as a list of key/value pairs.
        JsonArray a => a.OfType<JsonObject>().ToDictionary(
            e => e["key"]!.GetValue<string>(), e => e["value"]?.GetValue<string>()),
        _ => new Dictionary<string, string?>(),
    };

    internal static string Utf8(byte[] bytes) => Encoding.UTF8.GetString(bytes);
}

using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sessionization.Host.Output;

public enum OutputFormat
{
    Table,
    Csv,
    Json,
}

/// <summary>A titled table of text cells with the typed values kept for JSON.</summary>
public sealed record TitledTable(string Title, string JsonName, IReadOnlyList<string> Headers, IReadOnlyList<IReadOnlyList<string?>> Cells, IReadOnlyList<IReadOnlyList<JsonNode?>> Values);

/// <summary>Prints one or more tables as Spark-style text, CSV (a blank line between tables) or one JSON object.</summary>
public static class TableOutput
{
    public static string Render(IReadOnlyList<TitledTable> tables, OutputFormat format, bool withTitles, int limit)
    {
        switch (format)
        {
            case OutputFormat.Table:
                return string.Join("\n", tables.Select(t => (withTitles ? t.Title + "\n" : "") + SparkTable.Render(t.Headers, t.Cells, limit)));
            case OutputFormat.Csv:
                return string.Join("\n", tables.Select(t => (withTitles ? "# " + t.Title + "\n" : "") + Csv(t)));
            default:
                var root = new JsonObject();
                foreach (var t in tables)
                {
                    var rows = new JsonArray();
                    foreach (var values in t.Values)
                    {
                        var row = new JsonObject();
                        for (var i = 0; i < t.Headers.Count; i++)
                            row[t.Headers[i]] = values[i]?.DeepClone();
                        rows.Add(row);
                    }

                    root[t.JsonName] = rows;
                }

                return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n";
        }
    }

    private static string Csv(TitledTable table)
    {
        var text = new StringBuilder();
        text.AppendJoin(',', table.Headers.Select(Escape)).Append('\n');
        foreach (var row in table.Cells)
            text.AppendJoin(',', row.Select(c => Escape(c ?? ""))).Append('\n');
        return text.ToString();
    }

    private static string Escape(string value) =>
        value.IndexOfAny([',', '"', '\n', '\r']) < 0 ? value : "\"" + value.Replace("\"", "\"\"") + "\"";
}

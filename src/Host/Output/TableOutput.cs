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

/// <summary>
/// Prints tables as Spark-style text, or as one document: CSV (one table: a header line, then its rows) or one JSON
/// object with an array per table. A limit (0: none) applies to each table in every format; only the text says so.
/// </summary>
public static class TableOutput
{
    /// <summary>Rows shown in table format unless asked otherwise: Spark's <c>show()</c> default.</summary>
    public const int ShowDefaultRows = 20;

    public static string Render(IReadOnlyList<TitledTable> tables, OutputFormat format, bool withTitles, int limit)
    {
        switch (format)
        {
            case OutputFormat.Table:
                return string.Join("\n", tables.Select(t => (withTitles ? t.Title + "\n" : "") + SparkTable.Render(t.Headers, t.Cells, limit)));
            case OutputFormat.Csv:
                if (tables.Count != 1)
                    throw new ArgumentException("a CSV document holds one table", nameof(tables));
                return Csv(tables[0], limit);
            default:
                var root = new JsonObject();
                foreach (var t in tables)
                {
                    var rows = new JsonArray();
                    foreach (var values in limit > 0 ? t.Values.Take(limit) : t.Values)
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

    private static string Csv(TitledTable table, int limit)
    {
        var text = new StringBuilder();
        text.AppendJoin(',', table.Headers.Select(Escape)).Append('\n');
        foreach (var row in limit > 0 ? table.Cells.Take(limit) : table.Cells)
            text.AppendJoin(',', row.Select(c => Escape(c ?? ""))).Append('\n');
        return text.ToString();
    }

    private static string Escape(string value) =>
        value.IndexOfAny([',', '"', '\n', '\r']) < 0 ? value : "\"" + value.Replace("\"", "\"\"") + "\"";
}

using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sessionization.Host.Output;

public enum OutputFormat
{
    Table,
    Csv,
    Json,
}

/// <summary>One row: its text cells (table and CSV) and its typed values (JSON), made only when JSON is printed.</summary>
public sealed record TableRow(IReadOnlyList<string?> Cells, Func<IReadOnlyList<JsonNode?>> Values);

/// <summary>
/// A titled table whose rows are read as they are printed. <paramref name="Rows"/> starts a new read each time it is
/// called: a table printed whole in Spark's layout is read twice (once for the column widths), so that no format holds
/// more than a batch's rows in memory.
/// </summary>
public sealed record TitledTable(string Title, string JsonName, IReadOnlyList<string> Headers, Func<CancellationToken, IAsyncEnumerable<TableRow>> Rows);

/// <summary>
/// Prints tables as Spark-style text, or as one document: CSV (one table: a header line, then its rows) or one JSON
/// object with an array per table. A limit (0: none) applies to each table in every format, and only that many rows
/// (and one more, for Spark's footer) are read; only the text says there were more.
/// </summary>
public static class TableOutput
{
    /// <summary>Rows shown in table format unless asked otherwise: Spark's <c>show()</c> default.</summary>
    public const int ShowDefaultRows = 20;

    public static async Task WriteAsync(TextWriter output, IReadOnlyList<TitledTable> tables, OutputFormat format, bool withTitles, int limit, CancellationToken cancellationToken = default)
    {
        switch (format)
        {
            case OutputFormat.Table:
                for (var i = 0; i < tables.Count; i++)
                {
                    if (i > 0)
                        await output.WriteAsync('\n');
                    if (withTitles)
                        await output.WriteLineAsync(tables[i].Title);
                    await WriteSparkAsync(output, tables[i], limit, cancellationToken);
                }

                break;
            case OutputFormat.Csv:
                if (tables.Count != 1)
                    throw new ArgumentException("a CSV document holds one table", nameof(tables));
                await WriteCsvAsync(output, tables[0], limit, cancellationToken);
                break;
            default:
                await WriteJsonAsync(output, tables, limit, cancellationToken);
                break;
        }

        await output.FlushAsync(cancellationToken);
    }

    private static async IAsyncEnumerable<TableRow> Limited(TitledTable table, int limit, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var n = 0;
        await foreach (var row in table.Rows(cancellationToken))
        {
            yield return row;
            // Stopped as soon as the last row wanted is out: the next one may be in a file not yet read.
            if (++n == limit)
                yield break;
        }
    }

    private static async Task WriteSparkAsync(TextWriter output, TitledTable table, int limit, CancellationToken cancellationToken)
    {
        // With a limit the shown rows are few and kept; without one the rows are read once for the widths and again to print.
        List<TableRow>? kept = null;
        var more = false;
        var widths = table.Headers.Select(h => Math.Max(3, SparkTable.Width(h))).ToArray();
        if (limit > 0)
        {
            kept = [];
            await foreach (var row in Limited(table, limit + 1, cancellationToken))
            {
                if (kept.Count == limit)
                {
                    more = true;
                    break;
                }

                kept.Add(row);
            }
        }

        await foreach (var row in kept?.ToAsyncEnumerable() ?? table.Rows(cancellationToken))
            SparkTable.Widen(widths, row.Cells);

        var separator = SparkTable.Separator(widths);
        await output.WriteAsync(separator);
        await output.WriteAsync(SparkTable.Line(table.Headers, widths));
        await output.WriteAsync(separator);
        await foreach (var row in kept?.ToAsyncEnumerable() ?? table.Rows(cancellationToken))
            await output.WriteAsync(SparkTable.Line(row.Cells, widths));
        await output.WriteAsync(separator);
        if (more)
            await output.WriteLineAsync(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"only showing top {limit} rows"));
    }

    private static async Task WriteCsvAsync(TextWriter output, TitledTable table, int limit, CancellationToken cancellationToken)
    {
        await output.WriteLineAsync(string.Join(',', table.Headers.Select(Escape)));
        await foreach (var row in Limited(table, limit, cancellationToken))
            await output.WriteLineAsync(string.Join(',', row.Cells.Select(c => Escape(c ?? ""))));
    }

    private static async Task WriteJsonAsync(TextWriter output, IReadOnlyList<TitledTable> tables, int limit, CancellationToken cancellationToken)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        await using var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

        // The writer's bytes go out every few rows, so the document is never held whole.
        async Task Drain()
        {
            await json.FlushAsync(cancellationToken);
            await output.WriteAsync(System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan));
            buffer.ResetWrittenCount();
        }

        json.WriteStartObject();
        foreach (var table in tables)
        {
            json.WritePropertyName(table.JsonName);
            json.WriteStartArray();
            var n = 0;
            await foreach (var row in Limited(table, limit, cancellationToken))
            {
                json.WriteStartObject();
                var values = row.Values();
                for (var i = 0; i < table.Headers.Count; i++)
                {
                    json.WritePropertyName(table.Headers[i]);
                    if (values[i] is { } value)
                        value.WriteTo(json);
                    else
                        json.WriteNullValue();
                }

                json.WriteEndObject();
                if (++n % 1000 == 0)
                    await Drain();
            }

            json.WriteEndArray();
        }

        json.WriteEndObject();
        await Drain();
        await output.WriteAsync('\n');
    }

    private static string Escape(string value) =>
        value.IndexOfAny([',', '"', '\n', '\r']) < 0 ? value : "\"" + value.Replace("\"", "\"\"") + "\"";
}

using System.Globalization;
using Sessionization.Domain;
using Sessionization.Host.Runtime;

namespace Sessionization.Host.Input;

/// <summary>
/// Parses visits from CSV with the header <c>user_id,visit_time,page</c> (RFC 4180 quoting). Every error
/// names the source, line and column; nothing is returned from input with an error in it.
/// </summary>
public static class VisitsCsv
{
    private static readonly string[] Header = ["user_id", "visit_time", "page"];

    public static List<Visit> Parse(TextReader reader, string source)
    {
        var visits = new List<Visit>();
        var lineNumber = 0;
        var headerSeen = false;
        while (ReadRecord(reader, ref lineNumber, source) is { } record)
        {
            var (line, fields) = record;
            if (fields.Count == 1 && fields[0].Length == 0)
                continue;
            if (!headerSeen)
            {
                if (!fields.Select(f => f.Trim().ToLowerInvariant()).SequenceEqual(Header))
                {
                    // A compressed or binary file would otherwise print its bytes to the terminal as the "header".
                    if (fields.Any(IsBinary))
                        throw new UserFacingException($"{source}: not a CSV text file (line {line} holds binary data; decompress a .gz or .zip file first)");
                    throw new UserFacingException($"{source}: line {line}: header must be 'user_id,visit_time,page', found '{string.Join(",", fields)}'");
                }
                headerSeen = true;
                continue;
            }

            if (fields.Count != 3)
                throw new UserFacingException($"{source}: line {line}: expected 3 columns (user_id,visit_time,page), found {fields.Count}");
            visits.Add(new Visit(ParseUserId(fields[0], source, line), ParseTime(fields[1], source, line), ParsePage(fields[2], source, line)));
        }

        if (!headerSeen)
            throw new UserFacingException($"{source}: empty input; expected the header 'user_id,visit_time,page'");
        return visits;
    }

    /// <summary>Control characters other than tab, or bytes that are not UTF-8 (read as U+FFFD), do not occur in CSV text.</summary>
    private static bool IsBinary(string field) => field.Any(c => c == '\uFFFD' || (char.IsControl(c) && c != '\t'));

    private static long ParseUserId(string text, string source, int line)
    {
        var trimmed = text.Trim();
        if (trimmed.Length == 0 || trimmed.Equals("null", StringComparison.OrdinalIgnoreCase))
            throw new UserFacingException($"{source}: line {line}, column user_id: null user_id");
        if (!long.TryParse(trimmed, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var id))
            throw new UserFacingException($"{source}: line {line}, column user_id: '{trimmed}' is not a 64-bit integer");
        return id;
    }

    public static long ParseTime(string text, string source, int line)
    {
        var trimmed = text.Trim();
        if (trimmed.Length == 0 || trimmed.Equals("null", StringComparison.OrdinalIgnoreCase))
            throw new UserFacingException($"{source}: line {line}, column visit_time: null visit_time");
        if (!DateTimeOffset.TryParse(trimmed, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var time))
            throw new UserFacingException($"{source}: line {line}, column visit_time: '{trimmed}' is not an ISO-8601 timestamp");
        var ticks = time.UtcTicks;
        if (ticks % 10 != 0)
            throw new UserFacingException($"{source}: line {line}, column visit_time: '{trimmed}' is finer than microseconds");
        return Timestamps.ToMicros(time);
    }

    private static string ParsePage(string text, string source, int line)
    {
        if (text.Length == 0 || text.Equals("null", StringComparison.OrdinalIgnoreCase))
            throw new UserFacingException($"{source}: line {line}, column page: null page");
        return text;
    }

    /// <summary>Reads one CSV record, which may span lines inside quotes; returns the line it started on.</summary>
    private static (int Line, List<string> Fields)? ReadRecord(TextReader reader, ref int lineNumber, string source)
    {
        var line = reader.ReadLine();
        if (line is null)
            return null;
        lineNumber++;
        var start = lineNumber;
        var fields = new List<string>();
        var field = new System.Text.StringBuilder();
        var quoted = false;
        var i = 0;
        while (true)
        {
            if (i >= line.Length)
            {
                if (!quoted)
                    break;
                var next = reader.ReadLine() ?? throw new UserFacingException($"{source}: line {start}: unterminated quoted field");
                lineNumber++;
                field.Append('\n');
                line = next;
                i = 0;
                continue;
            }

            var c = line[i++];
            if (quoted)
            {
                if (c == '"' && i < line.Length && line[i] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    field.Append(c);
                }
            }
            else if (c == '"' && field.Length == 0)
            {
                quoted = true;
            }
            else if (c == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
            }
            else
            {
                field.Append(c);
            }
        }

        fields.Add(field.ToString().TrimEnd('\r'));
        return (start, fields);
    }
}

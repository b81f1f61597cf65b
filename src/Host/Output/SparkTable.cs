using System.Text;

namespace Sessionization.Host.Output;

/// <summary>The pieces of Spark's <c>DataFrame.show(truncate=False)</c> layout: left-aligned cells, minimum width 3, null shown as null.</summary>
public static class SparkTable
{
    public static void Widen(int[] widths, IReadOnlyList<string?> cells)
    {
        for (var i = 0; i < widths.Length; i++)
            widths[i] = Math.Max(widths[i], Width(cells[i] ?? "null"));
    }

    public static string Separator(int[] widths) => "+" + string.Join("+", widths.Select(w => new string('-', w))) + "+\n";

    public static string Line(IReadOnlyList<string?> cells, int[] widths)
    {
        var text = new StringBuilder("|");
        for (var i = 0; i < widths.Length; i++)
        {
            var cell = cells[i] ?? "null";
            text.Append(cell).Append(' ', widths[i] - Width(cell)).Append('|');
        }

        return text.Append('\n').ToString();
    }

    /// <summary>Display width as Spark counts it: East Asian wide and full-width characters take two columns.</summary>
    public static int Width(string text)
    {
        var width = 0;
        foreach (var rune in text.EnumerateRunes())
            width += IsWide(rune.Value) ? 2 : 1;
        return width;
    }

    private static bool IsWide(int c) =>
        c is >= 0x1100 and <= 0x115F
            or >= 0x2E80 and <= 0xA4CF
            or >= 0xAC00 and <= 0xD7A3
            or >= 0xF900 and <= 0xFAFF
            or >= 0xFE30 and <= 0xFE4F
            or >= 0xFF00 and <= 0xFF60
            or >= 0xFFE0 and <= 0xFFE6
            or >= 0x1F300 and <= 0x1F64F
            or >= 0x1F900 and <= 0x1F9FF
            or >= 0x20000 and <= 0x3FFFD;
}

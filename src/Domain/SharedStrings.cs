namespace Sessionization.Domain;

/// <summary>
/// Hands out one string for equal strings: page names repeat across visits and users, and one copy each keeps
/// a batch's live heap (and the garbage collector's work on it) small. Bounded, so all-distinct input costs
/// no more than not sharing.
/// </summary>
public sealed class SharedStrings
{
    private const int MaxDistinct = 65_536;
    private readonly Dictionary<string, string> _distinct;
    private readonly Dictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _byChars;

    public SharedStrings()
    {
        _distinct = new Dictionary<string, string>(StringComparer.Ordinal);
        _byChars = _distinct.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    public string Share(string value)
    {
        if (_distinct.TryGetValue(value, out var shared))
            return shared;
        if (_distinct.Count < MaxDistinct)
            _distinct[value] = value;
        return value;
    }

    /// <summary>The string of these characters: one already handed out if there is one, without making another.</summary>
    public string Share(ReadOnlySpan<char> value)
    {
        if (_byChars.TryGetValue(value, out var shared))
            return shared;
        return Share(value.ToString());
    }
}

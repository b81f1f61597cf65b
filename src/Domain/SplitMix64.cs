namespace Sessionization.Domain;

/// <summary>
/// SplitMix64: a tiny, fast generator that gives the same sequence for a seed on every platform and runtime
/// version, so generated workloads are reproducible anywhere.
/// </summary>
public sealed class SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong Next()
    {
        var z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}

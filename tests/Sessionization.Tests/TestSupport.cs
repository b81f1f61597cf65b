namespace Sessionization.Tests;

/// <summary>A directory of the test's own, deleted afterwards.</summary>
public sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sessionization-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A process under test may still hold a file for a moment; the OS temp cleaner gets it later.
        }
    }
}

public static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    /// <summary>The shared fixtures beside the repository (../shared), as CI lays them out.</summary>
    public static string Shared => System.IO.Path.GetFullPath(System.IO.Path.Combine(Root, "..", "shared"));

    public static string GoldenTable(string name)
    {
        var path = System.IO.Path.Combine(Shared, "fixtures", "delta-golden", name);
        if (!Directory.Exists(path))
            throw new DirectoryNotFoundException($"golden Delta table {path} not found: ../shared must sit beside the repository");
        return path;
    }

    /// <summary>Copies a directory tree; golden tables are copied before a test touches them.</summary>
    public static void Copy(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(System.IO.Path.Combine(to, System.IO.Path.GetRelativePath(from, dir)));
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = System.IO.Path.Combine(to, System.IO.Path.GetRelativePath(from, file));
            File.Copy(file, target);
            File.SetAttributes(target, FileAttributes.Normal);
        }
    }

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(System.IO.Path.Combine(dir.FullName, "Sessionization.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Sessionization.sln not found above the test binaries");
    }
}

/// <summary>
/// The determinism contract's two sides: session rows as it compares them (everything but the batch that wrote them,
/// in order), and the visits the direct computation starts from.
/// </summary>
public static class SessionKeys
{
    public static List<(long, string, long, long, long)> Of(IEnumerable<Sessionization.Domain.SessionRecord> rows) =>
        [.. rows.Select(r => (r.UserId, r.ConcatenatedPages, r.StartTimeMicros, r.EndTimeMicros, r.VisitCount)).Order()];

    /// <summary>
    /// The committed visits, in commit order, without the late ones. Equal visits can be committed more than once, and
    /// only the later ones late: the watermark never goes back, so once one is late every later one is too. The late
    /// ones are taken from the end, or an earlier, accepted one would go and a late one stay in its place, out of
    /// commit order among visits of equal time.
    /// </summary>
    public static List<Sessionization.Domain.Visit> Accepted(IEnumerable<Sessionization.Domain.Visit> committed, IEnumerable<Sessionization.Domain.Visit> late)
    {
        var accepted = committed.ToList();
        foreach (var visit in late)
        {
            var at = accepted.LastIndexOf(visit);
            Assert.True(at >= 0, $"late visit {visit} was never committed");
            accepted.RemoveAt(at);
        }

        return accepted;
    }
}

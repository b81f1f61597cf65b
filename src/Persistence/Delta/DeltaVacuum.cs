namespace Sessionization.Persistence.Delta;

/// <summary>What a vacuum found: the data files it deleted (or would delete) and their bytes, and the files kept.</summary>
public sealed record VacuumResult(string Table, IReadOnlyList<string> Deleted, long Bytes, int Kept);

/// <summary>
/// Delta's VACUUM for a table we write: deletes data files that no version inside the retention still needs. A file
/// is needed while it is in the latest version, or while it was removed less than the retention ago (a reader may
/// still travel to a version that holds it). A file no commit ever added (a write that crashed before its commit) is
/// deleted once it is older than the retention. The log is left whole, so versions stay listable; only versions older
/// than the retention lose their files.
/// </summary>
public static class DeltaVacuum
{
    public static VacuumResult Run(DeltaTable table, DateTimeOffset now, TimeSpan retain, bool dryRun)
    {
        var threshold = (now - retain).ToUnixTimeMilliseconds();
        var snapshot = table.LoadSnapshot();
        var live = snapshot.Files.Select(f => table.DataFilePath(f.Path)).ToHashSet(StringComparer.Ordinal);

        // When each removed file was removed last: the checkpoint's tombstones expire after a week, so every commit is read too.
        var removedAt = new Dictionary<string, long>(StringComparer.Ordinal);
        void Removed(RemoveFile remove, long fallback)
        {
            var path = table.DataFilePath(remove.Path);
            removedAt[path] = Math.Max(removedAt.GetValueOrDefault(path, long.MinValue), remove.DeletionTimestamp ?? fallback);
        }

        var nowMillis = now.ToUnixTimeMilliseconds();
        foreach (var tombstone in snapshot.Tombstones)
            Removed(tombstone, nowMillis);
        var ever = new HashSet<string>(live, StringComparer.Ordinal);
        foreach (var version in table.ListLog().Commits)
        {
            foreach (var action in table.ReadCommit(version))
            {
                if (action is RemoveFile remove)
                    Removed(remove, nowMillis);
                else if (action is AddFile add)
                    ever.Add(table.DataFilePath(add.Path));
            }
        }

        var deleted = new List<string>();
        long bytes = 0;
        var kept = 0;
        foreach (var file in Directory.EnumerateFiles(table.Root, "*", SearchOption.AllDirectories))
        {
            if (IsLogOrHidden(table, file) || live.Contains(file))
            {
                continue;
            }

            var stale = removedAt.TryGetValue(file, out var at) ? at < threshold
                : !ever.Contains(file) && new DateTimeOffset(File.GetLastWriteTimeUtc(file)).ToUnixTimeMilliseconds() < threshold;
            if (!stale)
            {
                kept++;
                continue;
            }

            bytes += new FileInfo(file).Length;
            deleted.Add(Path.GetRelativePath(table.Root, file));
            if (!dryRun)
                File.Delete(file);
        }

        return new VacuumResult(table.Name, deleted, bytes, kept);
    }

    /// <summary>The log, and files Delta readers pass over (names starting with _ or .), are never data files.</summary>
    private static bool IsLogOrHidden(DeltaTable table, string file)
    {
        var relative = Path.GetRelativePath(table.Root, file);
        return relative.Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('_') || part.StartsWith('.'));
    }
}

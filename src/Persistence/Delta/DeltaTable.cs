using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Parquet.Serialization;

namespace Sessionization.Persistence.Delta;

/// <summary>
/// The state of a Delta table at one version: protocol, metadata, live data files, the latest <c>txn</c> of each
/// application id and the tombstones of files removed but perhaps still read by time travel.
/// </summary>
public sealed record DeltaSnapshot(
    long Version,
    ProtocolAction Protocol,
    MetadataAction Metadata,
    IReadOnlyList<AddFile> Files,
    IReadOnlyDictionary<string, TxnAction> Transactions,
    IReadOnlyList<RemoveFile> Tombstones);

/// <summary>
/// A Delta Lake table on the local file system: reads its log (JSON commits and Parquet checkpoints) and
/// commits new versions atomically. A commit file is only ever created, never replaced, so two writers
/// racing for the same version cannot both win.
/// </summary>
public sealed partial class DeltaTable(string root, string? displayName = null)
{
    /// <summary>Delta's default: a checkpoint after every 10th commit.</summary>
    public const int DefaultCheckpointInterval = 10;

    /// <summary>Reader features this reader handles; any other is refused by name.</summary>
    private static readonly HashSet<string> SupportedReaderFeatures = ["vacuumProtocolCheck", "timestampNtz"];

    public string Root { get; } = Path.GetFullPath(root);

    public string Name { get; } = displayName ?? Path.GetFileName(Path.GetFullPath(root).TrimEnd(Path.DirectorySeparatorChar));

    public string LogDirectory => Path.Combine(Root, "_delta_log");

    public bool Exists => LatestVersion() is not null;

    /// <summary>A checkpoint is written after each commit whose version is a multiple of this; 0 writes none.</summary>
    public int CheckpointInterval { get; init; } = DefaultCheckpointInterval;

    public static string CommitFileName(long version) => version.ToString("D20", CultureInfo.InvariantCulture) + ".json";

    public string CommitPath(long version) => Path.Combine(LogDirectory, CommitFileName(version));

    /// <summary>Resolves a data file path from the log (relative and URI-encoded, or absolute) to a local path.</summary>
    public string DataFilePath(string logPath)
    {
        if (logPath.StartsWith("file:", StringComparison.Ordinal))
            return new Uri(logPath).LocalPath;
        var decoded = Uri.UnescapeDataString(logPath);
        return Path.IsPathRooted(decoded) ? decoded : Path.Combine(Root, decoded);
    }

    public sealed record LogListing(IReadOnlyList<long> Commits, IReadOnlyDictionary<long, IReadOnlyList<string>> Checkpoints)
    {
        public long? Latest => Commits.Count == 0 && Checkpoints.Count == 0
            ? null
            : Math.Max(Commits.Count == 0 ? -1 : Commits[^1], Checkpoints.Count == 0 ? -1 : Checkpoints.Keys.Max());
    }

    public LogListing ListLog()
    {
        var commits = new List<long>();
        var parts = new Dictionary<long, List<(int Part, int Of, string Path)>>();
        if (!Directory.Exists(LogDirectory))
            return new LogListing(commits, new Dictionary<long, IReadOnlyList<string>>());
        foreach (var path in Directory.EnumerateFiles(LogDirectory))
        {
            var name = Path.GetFileName(path);
            var m = LogFilePattern().Match(name);
            if (!m.Success)
                continue;
            var version = long.Parse(m.Groups["v"].Value, CultureInfo.InvariantCulture);
            if (m.Groups["json"].Success)
            {
                commits.Add(version);
                continue;
            }

            var part = m.Groups["part"].Success ? int.Parse(m.Groups["part"].Value, CultureInfo.InvariantCulture) : 1;
            var of = m.Groups["of"].Success ? int.Parse(m.Groups["of"].Value, CultureInfo.InvariantCulture) : 1;
            if (!parts.TryGetValue(version, out var list))
                parts[version] = list = [];
            list.Add((part, of, path));
        }

        commits.Sort();
        // A checkpoint counts only when all of its parts are present.
        var checkpoints = parts
            .Where(p => p.Value.Count > 0 && p.Value.Select(x => x.Part).Distinct().Count() == p.Value[0].Of && p.Value.All(x => x.Of == p.Value[0].Of))
            .ToDictionary(p => p.Key, p => (IReadOnlyList<string>)p.Value.OrderBy(x => x.Part).Select(x => x.Path).ToList());
        return new LogListing(commits, checkpoints);
    }

    public long? LatestVersion() => ListLog().Latest;

    public IReadOnlyList<DeltaAction> ReadCommit(long version)
    {
        var path = CommitPath(version);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            throw new DeltaTableException($"{Name}: commit {CommitFileName(version)} is missing from {LogDirectory}");
        }

        return DeltaJson.ParseCommit(text, $"{Name}/_delta_log/{CommitFileName(version)}");
    }

    /// <summary>Reconstructs the table state at <paramref name="version"/> (default: latest) from the newest usable checkpoint and the commits after it.</summary>
    public DeltaSnapshot LoadSnapshot(long? version = null)
    {
        var log = ListLog();
        var latest = log.Latest ?? throw new DeltaTableException($"{Name}: no Delta table at {Root} (no commits in _delta_log)");
        var target = version ?? latest;
        if (target > latest)
            throw new DeltaTableException($"{Name}: version {target} does not exist (latest is {latest})");

        var commitSet = log.Commits.ToHashSet();
        foreach (var checkpoint in log.Checkpoints.Keys.Where(v => v <= target).OrderDescending())
        {
            if (!Contiguous(commitSet, checkpoint + 1, target))
                continue;
            List<DeltaAction> actions;
            try
            {
                actions = ReadCheckpoint(log.Checkpoints[checkpoint]);
            }
            catch (Exception e) when (e is not DeltaUnsupportedException)
            {
                // An unreadable checkpoint is skipped like a missing one: an older checkpoint or the commits still hold the state.
                continue;
            }

            return Replay(target, actions, checkpoint + 1);
        }

        if (!commitSet.Contains(0))
            throw new DeltaTableException($"{Name}: cannot reconstruct version {target}: no usable checkpoint and commit 0 is missing");
        if (!Contiguous(commitSet, 0, target))
        {
            var missing = Enumerable.Range(0, (int)target + 1).Select(i => (long)i).First(v => !commitSet.Contains(v));
            throw new DeltaTableException($"{Name}: log versions are not contiguous: commit {missing} is missing before version {target}");
        }

        return Replay(target, [], 0);
    }

    private DeltaSnapshot Replay(long target, List<DeltaAction> initial, long firstCommit)
    {
        ProtocolAction? protocol = null;
        MetadataAction? metadata = null;
        var files = new Dictionary<string, AddFile>(StringComparer.Ordinal);
        var tombstones = new Dictionary<string, RemoveFile>(StringComparer.Ordinal);
        var txns = new Dictionary<string, TxnAction>(StringComparer.Ordinal);

        void Fold(DeltaAction action)
        {
            switch (action)
            {
                case ProtocolAction p:
                    protocol = p;
                    EnsureReadable(p, metadata);
                    break;
                case MetadataAction m:
                    metadata = m;
                    break;
                case AddFile a:
                    files[a.Path] = a;
                    tombstones.Remove(a.Path);
                    break;
                case RemoveFile r:
                    files.Remove(r.Path);
                    tombstones[r.Path] = r;
                    break;
                case TxnAction t:
                    txns[t.AppId] = t;
                    break;
            }
        }

        foreach (var action in initial)
            Fold(action);
        for (var v = firstCommit; v <= target; v++)
            foreach (var action in ReadCommit(v))
                Fold(action);

        if (protocol is null || metadata is null)
            throw new DeltaTableException($"{Name}: version {target} has no {(protocol is null ? "protocol" : "metaData")} action");
        EnsureReadable(protocol, metadata);
        var ordered = files.Values.OrderBy(f => f.ModificationTime).ThenBy(f => f.Path, StringComparer.Ordinal).ToList();
        return new DeltaSnapshot(target, protocol, metadata, ordered, txns, [.. tombstones.Values.OrderBy(t => t.Path, StringComparer.Ordinal)]);
    }

    private static bool Contiguous(HashSet<long> commits, long from, long to)
    {
        for (var v = from; v <= to; v++)
            if (!commits.Contains(v))
                return false;
        return true;
    }

    private List<DeltaAction> ReadCheckpoint(IReadOnlyList<string> parts)
    {
        var actions = new List<DeltaAction>();
        foreach (var part in parts)
        {
            using var stream = File.OpenRead(part);
            var data = ParquetSerializer.DeserializeUntypedAsync(stream).GetAwaiter().GetResult();
            foreach (var row in data.Data)
            {
                // Each checkpoint row holds one non-null action column; decode it through the same JSON path as commits.
                foreach (var (kind, value) in row)
                {
                    if (value is null)
                        continue;
                    actions.Add(DeltaJson.ParseAction(new JsonObject { [kind] = ToNode(value) }));
                }
            }
        }

        return actions;
    }

    // The untyped deserializer hands out maps keyed by ReadOnlyMemory<char> (a non-empty configuration map, say),
    // which System.Text.Json cannot write as property names; every value is turned into JSON by hand instead.
    private static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        string text => JsonValue.Create(text),
        ReadOnlyMemory<char> chars => JsonValue.Create(chars.ToString()),
        System.Collections.IDictionary map => MapToNode(map),
        System.Collections.IEnumerable items and not byte[] => new JsonArray([.. items.Cast<object?>().Select(ToNode)]),
        _ => JsonSerializer.SerializeToNode(value),
    };

    private static JsonObject MapToNode(System.Collections.IDictionary map)
    {
        var node = new JsonObject();
        foreach (System.Collections.DictionaryEntry entry in map)
            node[entry.Key is ReadOnlyMemory<char> key ? key.ToString() : Convert.ToString(entry.Key, CultureInfo.InvariantCulture)!] = ToNode(entry.Value);
        return node;
    }

    /// <summary>Refuses a table whose protocol needs what this reader cannot do, naming the version or features.</summary>
    public void EnsureReadable(ProtocolAction protocol, MetadataAction? metadata)
    {
        if (protocol.MinReaderVersion > 3)
            throw new DeltaUnsupportedException(
                $"{Name}: Delta reader protocol version {protocol.MinReaderVersion} is not supported (this reader supports versions 1 to 3)");
        if (protocol.MinReaderVersion == 3)
        {
            var unsupported = protocol.ReaderFeatures.Where(f => !SupportedReaderFeatures.Contains(f)).ToList();
            if (unsupported.Count > 0)
                throw new DeltaUnsupportedException($"{Name}: unsupported Delta reader features: {string.Join(", ", unsupported)}");
        }

        if (protocol.MinReaderVersion == 2 && metadata is not null
            && metadata.Configuration.TryGetValue("delta.columnMapping.mode", out var mode) && mode != "none")
            throw new DeltaUnsupportedException($"{Name}: unsupported Delta reader features: columnMapping (mode '{mode}')");
    }

    /// <summary>Refuses to write to a table whose writer protocol asks for features this writer does not implement.</summary>
    public void EnsureWritable(ProtocolAction protocol)
    {
        if (protocol.MinWriterVersion > 2)
            throw new DeltaUnsupportedException(
                $"{Name}: Delta writer protocol version {protocol.MinWriterVersion} is not supported for writing (this writer supports versions 1 and 2)");
    }

    /// <summary>
    /// Writes <paramref name="actions"/> as version <paramref name="version"/>. The commit file appears
    /// whole or not at all: it is written and flushed under a temporary name, then linked into place
    /// with a no-replace move, which fails if another writer took the version first.
    /// </summary>
    public void Commit(long version, IEnumerable<DeltaAction> commitActions)
    {
        var actions = commitActions.ToList();
        Directory.CreateDirectory(LogDirectory);
        var bytes = DeltaJson.WriteCommit(actions);
        var target = CommitPath(version);
        var temp = Path.Combine(LogDirectory, $".{CommitFileName(version)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            if (!PublishNoReplace(temp, target))
                throw new DeltaConcurrentCommitException(Name, version);
        }
        finally
        {
            if (File.Exists(temp))
                File.Delete(temp);
        }

        // Readers without in-commit timestamps take a commit's time from its file: keep the two the same.
        var timestamp = actions.OfType<CommitInfoAction>().Select(c => c.Content["timestamp"]?.GetValue<long>()).FirstOrDefault();
        if (timestamp is { } millis)
            File.SetLastWriteTimeUtc(target, DateTimeOffset.FromUnixTimeMilliseconds(millis).UtcDateTime);
        if (CheckpointInterval > 0 && version > 0 && version % CheckpointInterval == 0)
            DeltaCheckpoint.Write(this, LoadSnapshot(version), timestamp ?? DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    /// <summary>
    /// The timestamp for the commit after <paramref name="latest"/>: the wall clock, but never at or before the
    /// latest commit's, since readers resolve <c>TIMESTAMP AS OF</c> by commit time.
    /// </summary>
    public long NextCommitTimestamp(long? latest)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        if (latest is not { } version || !File.Exists(CommitPath(version)))
            return now;
        var previous = ReadCommit(version).OfType<CommitInfoAction>().Select(c => c.Content["timestamp"]?.GetValue<long>()).FirstOrDefault()
            ?? new DateTimeOffset(File.GetLastWriteTimeUtc(CommitPath(version))).ToUnixTimeMilliseconds();
        return Math.Max(now, previous + 1);
    }

    /// <summary>
    /// Puts <paramref name="temp"/> in place as <paramref name="target"/> unless the target exists, atomically.
    /// On Unix a hard link is created (link(2) fails with EEXIST if another writer won); File.Move is
    /// not used there because it checks and renames in two steps, which lets two racing writers both win.
    /// </summary>
    private static bool PublishNoReplace(string temp, string target)
    {
        if (OperatingSystem.IsWindows())
        {
            try
            {
                File.Move(temp, target, overwrite: false);
                return true;
            }
            catch (IOException) when (File.Exists(target))
            {
                return false;
            }
        }

        if (NativeMethods.Link(temp, target) == 0)
            return true;
        var errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        const int EEXIST = 17;
        if (errno == EEXIST)
            return false;
        throw new IOException($"cannot create {target}: error {errno} ({System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno)})");
    }

    private static partial class NativeMethods
    {
        [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
        internal static partial int Link(string existing, string created);
    }

    /// <summary>The last version committed with a <c>txn</c> of <paramref name="appId"/>, found by walking back from the newest commit.</summary>
    public long? LatestTransaction(string appId)
    {
        var log = ListLog();
        for (var i = log.Commits.Count - 1; i >= 0; i--)
        {
            var version = log.Commits[i];
            if (log.Checkpoints.ContainsKey(version))
                return LoadSnapshot(log.Latest).Transactions.TryGetValue(appId, out var t) ? t.Version : null;
            foreach (var action in ReadCommit(version))
                if (action is TxnAction t && t.AppId == appId)
                    return t.Version;
        }

        return null;
    }

    [GeneratedRegex(@"^(?<v>\d{20})(?:(?<json>\.json)|\.checkpoint(?:\.(?<part>\d{10})\.(?<of>\d{10}))?\.parquet)$")]
    private static partial Regex LogFilePattern();
}

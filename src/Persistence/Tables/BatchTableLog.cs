using System.Globalization;
using System.Text.Json.Nodes;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Parquet;

namespace Sessionization.Persistence.Tables;

/// <summary>
/// Whose tables these are: the pipeline (one base directory's tables and the state that goes with them) and the
/// visits table it reads. Both are written into the output tables' <c>metaData.configuration</c>, so the state can
/// be checked against the tables at start-up and an outside reader can see where a table came from.
/// </summary>
public sealed record PipelineIdentity(string PipelineId, string SourceTableId)
{
    public const string PipelineKey = "sessionization.pipelineId";
    public const string SourceKey = "sessionization.sourceTableId";

    public IReadOnlyDictionary<string, string> Configuration => new Dictionary<string, string>
    {
        [PipelineKey] = PipelineId,
        [SourceKey] = SourceTableId,
    };

    /// <summary>The identity a table's metadata records, or null for a table without one.</summary>
    public static PipelineIdentity? Of(MetadataAction metadata) =>
        metadata.Configuration.TryGetValue(PipelineKey, out var pipeline)
            ? new PipelineIdentity(pipeline, metadata.Configuration.GetValueOrDefault(SourceKey) ?? "")
            : null;
}

/// <summary>A batch's provenance as its commits record it, in <c>commitInfo</c>.</summary>
public static class BatchProvenanceJson
{
    public const string SessionsKey = "sessions";

    public static JsonObject ToJson(this BatchProvenance provenance)
    {
        var json = new JsonObject
        {
            ["batch"] = provenance.Batch,
            ["fromVersion"] = provenance.From.Version,
            ["fromFileIndex"] = provenance.From.FileIndex,
            ["toVersion"] = provenance.To.Version,
            ["toFileIndex"] = provenance.To.FileIndex,
            ["lastVersion"] = provenance.LastVersion,
            ["visits"] = provenance.Visits,
        };
        if (provenance.Sessions is not null)
            json[SessionsKey] = provenance.Sessions;
        if (provenance.StartedAtMillis is { } started)
            json["startedAt"] = started;
        return json;
    }
}

/// <summary>One batch's data file for a table: its row count, statistics, how to write it and its timestamp values.</summary>
public sealed record BatchFile(int RowCount, FileStats Stats, Func<Stream, Task> Write, IReadOnlyList<TimestampValues> Timestamps);

/// <summary>A data file an earlier batch wrote and what replaces it (null: nothing, every row was corrected away).</summary>
public sealed record FileRewrite(AddFile Old, BatchFile? Replacement);

/// <summary>
/// The Delta per-file statistics of a data file: row count, and min, max and null count of its long and timestamp
/// columns. Timestamps are written at millisecond precision as Delta specifies (the minimum truncated down, the
/// maximum truncated down too: readers widen a maximum by a millisecond), so no reader skips a file it needs.
/// </summary>
public sealed class FileStats(long rows)
{
    private readonly JsonObject _min = [];
    private readonly JsonObject _max = [];
    private readonly JsonObject _nulls = [];

    public FileStats Long(string column, IEnumerable<long?> values)
    {
        var (min, max, nulls) = Scan(values);
        if (min is not null)
        {
            _min[column] = min;
            _max[column] = max;
        }

        _nulls[column] = nulls;
        return this;
    }

    public FileStats Timestamp(string column, IEnumerable<long?> micros)
    {
        var (min, max, nulls) = Scan(micros);
        if (min is { } low && max is { } high)
        {
            _min[column] = Millis(low);
            _max[column] = Millis(high);
        }

        _nulls[column] = nulls;
        return this;
    }

    public FileStats Strings(string column, IEnumerable<string?> values)
    {
        _nulls[column] = values.LongCount(v => v is null);
        return this;
    }

    /// <summary>The statistics of a non-null long column whose bounds were taken as its rows streamed by.</summary>
    public FileStats Long(string column, LongBounds bounds)
    {
        if (bounds.Min is { } min && bounds.Max is { } max)
        {
            _min[column] = min;
            _max[column] = max;
        }

        _nulls[column] = 0;
        return this;
    }

    /// <summary>The statistics of a non-null timestamp column whose bounds were taken as its rows streamed by.</summary>
    public FileStats Timestamp(string column, LongBounds micros)
    {
        if (micros.Min is { } min && micros.Max is { } max)
        {
            _min[column] = Millis(min);
            _max[column] = Millis(max);
        }

        _nulls[column] = 0;
        return this;
    }

    /// <summary>A string column with no nulls.</summary>
    public FileStats NoNulls(string column)
    {
        _nulls[column] = 0;
        return this;
    }

    public string ToJson() => new JsonObject
    {
        ["numRecords"] = rows,
        ["minValues"] = _min.DeepClone(),
        ["maxValues"] = _max.DeepClone(),
        ["nullCount"] = _nulls.DeepClone(),
    }.ToJsonString();

    private static (long? Min, long? Max, long Nulls) Scan(IEnumerable<long?> values)
    {
        long? min = null, max = null;
        var nulls = 0L;
        foreach (var value in values)
        {
            if (value is not { } v)
            {
                nulls++;
                continue;
            }

            min = min is { } m && m <= v ? m : v;
            max = max is { } x && x >= v ? x : v;
        }

        return (min, max, nulls);
    }

    private static string Millis(long micros)
    {
        var floored = micros - (((micros % 1000) + 1000) % 1000);
        return Timestamps.ToDateTime(floored).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
    }
}

/// <summary>The least and greatest of the values seen so far, for the statistics of a file written row group by row group.</summary>
public struct LongBounds
{
    public long? Min { get; private set; }

    public long? Max { get; private set; }

    public void Include(long value)
    {
        Min = Min is { } min && min <= value ? min : value;
        Max = Max is { } max && max >= value ? max : value;
    }
}

/// <summary>
/// Live data files of a table that hold the batches <see cref="First"/> to <see cref="Last"/>, and no other file
/// holds any of them. Each batch writes one file; a compaction (<c>optimize</c>) joins the files of consecutive
/// batches into one, so groups never overlap and are read in batch order.
/// </summary>
public sealed record BatchFiles(long First, long Last, IReadOnlyList<AddFile> Files)
{
    public long Size => Files.Sum(f => f.Size);
}

/// <summary>
/// The commit discipline shared by the sessionizer's output tables: one commit per batch, carrying a
/// <c>txn</c> action (app id + batch number) so that a batch written again after a crash is recognised and
/// skipped, and a rewind that removes every batch from a given one on, carrying the batch before it.
/// Each data file holds one batch and says which in its <c>batch_number</c> statistics. Commit timestamps are the
/// wall clock, never going back (see <see cref="DeltaTable.NextCommitTimestamp"/>); data files do not depend on them.
/// </summary>
public sealed class BatchTableLog(DeltaTable delta, DeltaSchema schema)
{
    public const string AppId = "sessionization";

    /// <summary>The operation a compaction's commitInfo names, as Delta's own OPTIMIZE does.</summary>
    public const string OptimizeOperation = "OPTIMIZE";

    public DeltaTable Delta { get; } = delta;

    /// <summary>The last batch this table holds (after a rewind, the batch before the rewind point), or null.</summary>
    public long? LastCommittedBatch() => Delta.Exists ? Delta.LatestTransaction(AppId) : null;

    /// <summary>The pipeline the table belongs to, or null when the table does not exist or records none.</summary>
    public PipelineIdentity? Pipeline() => Delta.Exists ? PipelineIdentity.Of(Delta.LoadSnapshot().Metadata) : null;

    /// <summary>Creates the empty table for <paramref name="pipeline"/> unless it exists; returns false when it did.</summary>
    public bool EnsureCreated(PipelineIdentity pipeline)
    {
        if (Delta.Exists)
            return false;
        var time = Delta.NextCommitTimestamp(null);
        try
        {
            Delta.Commit(0, [
                ProtocolAction.AppendOnlyDefault,
                Metadata(pipeline, time),
                CommitInfo(time, "CREATE TABLE", new JsonObject { ["isManaged"] = "false" }, 0, 0, null)]);
            return true;
        }
        catch (DeltaConcurrentCommitException)
        {
            return false;
        }
    }

    /// <summary>
    /// Commits batch <paramref name="batch"/> unless the table already holds it: its data file (when
    /// <paramref name="file"/> has rows), the <c>txn</c> and a commitInfo that records the batch's provenance.
    /// The file's name is derived from the batch, the version it is committed as and its bytes, so a replay
    /// writes the same file and a batch written again after a rewind never reuses a name older versions hold.
    /// <paramref name="rewrites"/> correct rows that earlier batches wrote (copy-on-write): in the same commit, each
    /// old data file is removed and its replacement, if any rows remain, added. Returns false for a batch that was
    /// already there. <paramref name="beforeCommit"/> is awaited after the files are written and before the commit: a
    /// batch's files can be written while what must be durable before its commit (the users' states) is still saving.
    /// </summary>
    public async Task<bool> CommitBatchAsync(
        long batch, BatchFile? file, PipelineIdentity pipeline, BatchProvenance? provenance, IReadOnlyList<FileRewrite>? rewrites = null, Func<Task>? beforeCommit = null)
    {
        if (LastCommittedBatch() >= batch)
            return false;
        var latest = Delta.LatestVersion();
        var version = (latest ?? -1) + 1;
        var time = Delta.NextCommitTimestamp(latest);
        var actions = new List<DeltaAction>();
        if (latest is null)
        {
            actions.Add(ProtocolAction.AppendOnlyDefault);
            actions.Add(Metadata(pipeline, time));
        }

        var rows = 0;
        var files = 0;
        if (file is { RowCount: > 0 })
        {
            actions.Add(await WriteAsync(file, batch, version, time));
            rows = file.RowCount;
            files++;
        }

        foreach (var rewrite in rewrites ?? [])
        {
            actions.Add(new RemoveFile(rewrite.Old.Path, time, true));
            if (rewrite.Replacement is { RowCount: > 0 } replacement)
            {
                actions.Add(await WriteAsync(replacement, BatchRangeOf(rewrite.Old).First, version, time));
                rows += replacement.RowCount;
                files++;
            }
        }

        actions.Add(new TxnAction(AppId, batch, time));
        actions.Add(rewrites is { Count: > 0 }
            ? CommitInfo(time, "MERGE", new JsonObject { ["batch"] = Text(batch), ["rewrittenFiles"] = Text(rewrites.Count) }, files, rows, provenance?.ToJson())
            : CommitInfo(time, "WRITE", new JsonObject { ["mode"] = "Append", ["batch"] = Text(batch) }, files, rows, provenance?.ToJson()));
        if (beforeCommit is not null)
            await beforeCommit();
        Delta.Commit(version, actions);
        return true;
    }

    private async Task<AddFile> WriteAsync(BatchFile file, long batch, long version, long time, bool dataChange = true)
    {
        var written = await ParquetFiles.WriteAsync(
            Delta.Root, file.Write, file.Timestamps, hash => ParquetFiles.ContentName(Delta.Name, batch, version, hash));
        return new AddFile(written.Name, new Dictionary<string, string?>(), written.Size, time, dataChange, file.Stats.ToJson(), false);
    }

    /// <summary>
    /// Commits a compaction (Delta's <c>OPTIMIZE</c>): each group of <paramref name="bins"/> is replaced by the one file
    /// its <see cref="BatchFile"/> writes, holding the same rows. The commit's adds and removes say
    /// <c>dataChange=false</c>, so a streaming reader of the table's changes passes over it, and it carries no
    /// <c>txn</c>: it is not a batch. Returns the version committed and the bytes written, or null when there was nothing to compact.
    /// </summary>
    public async Task<(long Version, long Bytes)?> CommitCompactionAsync(IReadOnlyList<(BatchFiles Bin, BatchFile File)> bins)
    {
        if (bins.Count == 0)
            return null;
        var latest = Delta.LatestVersion() ?? throw new DeltaTableException($"{Delta.Name}: the table does not exist");
        var version = latest + 1;
        var time = Delta.NextCommitTimestamp(latest);
        var actions = new List<DeltaAction>();
        long removedBytes = 0, addedBytes = 0, rows = 0;
        foreach (var (bin, file) in bins)
        {
            foreach (var old in bin.Files)
            {
                actions.Add(new RemoveFile(old.Path, time, false));
                removedBytes += old.Size;
            }

            var add = await WriteAsync(file, bin.First, version, time, dataChange: false);
            actions.Add(add);
            addedBytes += add.Size;
            rows += file.RowCount;
        }

        var removed = bins.Sum(b => b.Bin.Files.Count);
        actions.Add(new CommitInfoAction(new JsonObject
        {
            ["timestamp"] = time,
            ["operation"] = OptimizeOperation,
            ["operationParameters"] = new JsonObject { ["predicate"] = "[]", ["zOrderBy"] = "[]", ["auto"] = false },
            ["isBlindAppend"] = false,
            ["operationMetrics"] = new JsonObject
            {
                ["numRemovedFiles"] = Text(removed),
                ["numRemovedBytes"] = Text(removedBytes),
                ["numAddedFiles"] = Text(bins.Count),
                ["numAddedBytes"] = Text(addedBytes),
                ["numOutputRows"] = Text(rows),
            },
            ["engineInfo"] = EngineInfo.Name,
        }));
        Delta.Commit(version, actions);
        return (version, addedBytes);
    }

    /// <summary>Whether a commit is a compaction: it changes which files hold the rows, not the rows.</summary>
    public static bool IsCompaction(IReadOnlyList<DeltaAction> actions) =>
        actions.OfType<CommitInfoAction>().Any(c => c.Content["operation"]?.GetValue<string>() == OptimizeOperation);

    /// <summary>
    /// Takes back batch <paramref name="batch"/> and every later one: one commit brings the table back to what it was
    /// after batch <paramref name="batch"/> - 1 (Delta's <c>RESTORE</c>), removing the later batches' data files and
    /// adding back any file a later batch's correction rewrote. Returns false when there was nothing to take back.
    /// </summary>
    public bool RewindTo(long batch)
    {
        if (!Delta.Exists || !(LastCommittedBatch() >= batch))
            return false;
        var snapshot = Delta.LoadSnapshot();
        var target = batch == 0 ? [] : Target(batch, snapshot);
        var time = Delta.NextCommitTimestamp(snapshot.Version);
        var live = snapshot.Files.Select(f => f.Path).ToHashSet();
        var wanted = target.Select(f => f.Path).ToHashSet();
        var removes = snapshot.Files.Where(f => !wanted.Contains(f.Path)).Select(f => (DeltaAction)new RemoveFile(f.Path, time, true));
        var adds = target.Where(f => !live.Contains(f.Path)).Select(f => (DeltaAction)(f with { ModificationTime = time, DataChange = true })).ToList();
        // A file a vacuum deleted cannot be put back: the rewind is refused rather than committing a version that names it.
        if (adds.OfType<AddFile>().FirstOrDefault(a => !File.Exists(Delta.DataFilePath(a.Path))) is { } gone)
            throw new DeltaTableException($"{Delta.Name}: cannot rewind to batch {batch}: data file {gone.Path} of the version it restores was deleted by a vacuum");
        var actions = new List<DeltaAction>(removes);
        actions.AddRange(adds);
        actions.Add(new TxnAction(AppId, batch - 1, time));
        actions.Add(CommitInfo(
            time,
            adds.Count > 0 ? "RESTORE" : "DELETE",
            new JsonObject { ["predicate"] = $"batch_number >= {Text(batch)}" },
            actions.Count - 2,
            0,
            null));
        Delta.Commit(snapshot.Version + 1, actions);
        return true;
    }

    /// <summary>
    /// The files the table held after batch <paramref name="batch"/> - 1: those of the newest version whose commit
    /// left it there, with every later compaction of those files applied. A compaction changes no rows, so applying
    /// it keeps the content and spares the rewind from putting back small files a vacuum has since deleted.
    /// </summary>
    private List<AddFile> Target(long batch, DeltaSnapshot snapshot)
    {
        var log = Delta.ListLog();
        var index = -1;
        for (var i = log.Commits.Count - 1; i >= 0 && index < 0; i--)
        {
            if (Delta.ReadCommit(log.Commits[i]).OfType<TxnAction>().Any(t => t.AppId == AppId && t.Version == batch - 1))
                index = i;
        }

        if (index < 0)
        {
            // No commit left the table after that batch (the table began later): keep the files of earlier batches.
            if (InBatchOrder(snapshot.Files).FirstOrDefault(g => g.First < batch && g.Last >= batch) is { } straddling)
                throw new DeltaTableException($"{Delta.Name}: cannot rewind to batch {batch}: a compacted file holds batches {straddling.First} to {straddling.Last}");
            return snapshot.Files.Where(f => BatchRangeOf(f).Last < batch).ToList();
        }

        var target = Delta.LoadSnapshot(log.Commits[index]).Files.ToDictionary(f => f.Path);
        foreach (var version in log.Commits.Skip(index + 1))
        {
            var actions = Delta.ReadCommit(version);
            if (!IsCompaction(actions))
                continue;
            var removed = actions.OfType<RemoveFile>().Select(r => r.Path).ToList();
            if (removed.Count == 0 || !removed.All(target.ContainsKey))
                continue;
            foreach (var path in removed)
                target.Remove(path);
            foreach (var add in actions.OfType<AddFile>())
                target[add.Path] = add;
        }

        return [.. target.Values];
    }

    /// <summary>Whether a commit takes batches back (a rewind) rather than writing one.</summary>
    public static bool IsRewind(IReadOnlyList<DeltaAction> actions) =>
        actions.OfType<CommitInfoAction>().Any(c => c.Content["operation"]?.GetValue<string>() is "DELETE" or "RESTORE");

    /// <summary>
    /// The session rules the table's latest batch was written under, as its commit records them (see
    /// <see cref="BatchProvenance.Sessions"/>); null for the seed's rule, or when no batch is there. Commits that are
    /// not batches (a rewind's RESTORE) are looked past.
    /// </summary>
    public string? LatestSessionRules()
    {
        if (Delta.LatestVersion() is not { } latest)
            return null;
        for (var version = latest; version >= 0; version--)
        {
            var info = Delta.ReadCommit(version).OfType<CommitInfoAction>().FirstOrDefault()?.Content;
            if (info?["sessionization"] is JsonObject provenance)
                return provenance[BatchProvenanceJson.SessionsKey]?.GetValue<string>();
        }

        return null;
    }

    /// <summary>The batches a data file holds, from its statistics: one batch, or a compacted file's consecutive batches.</summary>
    public (long First, long Last) BatchRangeOf(AddFile file)
    {
        var stats = file.Stats is null ? null : JsonNode.Parse(file.Stats);
        var first = stats?["minValues"]?["batch_number"]?.GetValue<long>();
        var last = stats?["maxValues"]?["batch_number"]?.GetValue<long>();
        return first is { } f && last is { } l
            ? (f, l)
            : throw new DeltaTableException($"{Delta.Name}/{file.Path}: no batch_number statistics; not written by the sessionizer");
    }

    /// <summary>The rows a data file holds, from its statistics.</summary>
    public long RowCountOf(AddFile file) =>
        (file.Stats is null ? null : JsonNode.Parse(file.Stats)?["numRecords"]?.GetValue<long>())
        ?? throw new DeltaTableException($"{Delta.Name}/{file.Path}: no numRecords statistics; not written by the sessionizer");

    /// <summary>
    /// <paramref name="files"/> grouped by the batches they hold, in batch order: files whose batch ranges overlap share
    /// a group (see <see cref="BatchFiles"/>).
    /// </summary>
    public IReadOnlyList<BatchFiles> InBatchOrder(IEnumerable<AddFile> files)
    {
        var groups = new List<BatchFiles>();
        foreach (var (file, (first, last)) in files.Select(f => (f, BatchRangeOf(f))).OrderBy(f => f.Item2.First).ThenBy(f => f.Item2.Last))
        {
            if (groups.Count > 0 && groups[^1].Last >= first)
                groups[^1] = new BatchFiles(groups[^1].First, Math.Max(groups[^1].Last, last), [.. groups[^1].Files, file]);
            else
                groups.Add(new BatchFiles(first, last, [file]));
        }

        return groups;
    }

    // Each table gets its own random id, as Delta intends: the id is what tells one table from a copy of another.
    private MetadataAction Metadata(PipelineIdentity pipeline, long time) =>
        new(Guid.NewGuid().ToString(), schema.ToJson(), [], pipeline.Configuration, time);

    private static CommitInfoAction CommitInfo(long time, string operation, JsonObject parameters, int files, int rows, JsonObject? provenance)
    {
        var info = new JsonObject
        {
            ["timestamp"] = time,
            ["operation"] = operation,
            ["operationParameters"] = parameters,
            ["isBlindAppend"] = operation == "WRITE",
            ["operationMetrics"] = new JsonObject { ["numFiles"] = Text(files), ["numOutputRows"] = Text(rows) },
            ["engineInfo"] = EngineInfo.Name,
        };
        if (provenance is not null)
            info["sessionization"] = provenance;
        return new CommitInfoAction(info);
    }

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}

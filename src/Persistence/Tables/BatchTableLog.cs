using System.Globalization;
using System.Text.Json.Nodes;
using Sessionization.Persistence.Delta;

namespace Sessionization.Persistence.Tables;

/// <summary>
/// The commit discipline shared by the sessionizer's output tables: one commit per batch, carrying a
/// <c>txn</c> action (app id + batch number) so that a batch written again after a crash is recognised and
/// skipped, and a rewind that removes every batch from a given one on, carrying the batch before it.
/// Each data file holds one batch and says which in its <c>batch_number</c> statistics.
/// </summary>
public sealed class BatchTableLog(DeltaTable delta, Delta.DeltaSchema schema)
{
    public const string AppId = "sessionization";

    public DeltaTable Delta { get; } = delta;

    /// <summary>The last batch this table holds (after a rewind, the batch before the rewind point), or null.</summary>
    public long? LastCommittedBatch() => Delta.Exists ? Delta.LatestTransaction(AppId) : null;

    /// <summary>
    /// Commits batch <paramref name="batch"/> unless the table already holds it. <paramref name="writeFile"/> writes
    /// the batch's data file, if it has rows. Returns false for a batch that was already there.
    /// </summary>
    public async Task<bool> CommitBatchAsync(long batch, int rowCount, string minMaxStats, Func<string, Task<long>>? writeFile, long commitTimeMillis)
    {
        if (LastCommittedBatch() >= batch)
            return false;
        var latest = Delta.LatestVersion();
        var actions = new List<DeltaAction>();
        if (latest is null)
        {
            actions.Add(ProtocolAction.AppendOnlyDefault);
            actions.Add(new MetadataAction(DeterministicId(), schema.ToJson(), [], new Dictionary<string, string>(), commitTimeMillis));
        }

        if (rowCount > 0 && writeFile is not null)
        {
            var fileName = ParquetFiles.DeterministicName(Delta.Name, batch);
            var size = await writeFile(Path.Combine(Delta.Root, fileName));
            var stats = $"{{\"numRecords\":{rowCount.ToString(CultureInfo.InvariantCulture)},{minMaxStats}}}";
            actions.Add(new AddFile(fileName, new Dictionary<string, string?>(), size, commitTimeMillis, true, stats, false));
        }

        actions.Add(new TxnAction(AppId, batch, commitTimeMillis));
        actions.Add(CommitInfo(commitTimeMillis, "WRITE", new JsonObject { ["mode"] = "Append", ["batch"] = Text(batch) }, rowCount > 0 ? 1 : 0, rowCount));
        Delta.Commit((latest ?? -1) + 1, actions);
        return true;
    }

    /// <summary>
    /// Takes back batch <paramref name="batch"/> and every later one: one commit removes their data files, so
    /// readers see the table as it was before them. Returns false when there was nothing to take back.
    /// </summary>
    public bool RewindTo(long batch, long commitTimeMillis)
    {
        if (!Delta.Exists || !(LastCommittedBatch() >= batch))
            return false;
        var snapshot = Delta.LoadSnapshot();
        var removes = snapshot.Files.Where(f => BatchOf(f) >= batch)
            .Select(f => (DeltaAction)new RemoveFile(f.Path, commitTimeMillis, true)).ToList();
        var actions = new List<DeltaAction>(removes)
        {
            new TxnAction(AppId, batch - 1, commitTimeMillis),
            CommitInfo(commitTimeMillis, "DELETE", new JsonObject { ["predicate"] = $"batch_number >= {Text(batch)}" }, removes.Count, 0),
        };
        Delta.Commit(snapshot.Version + 1, actions);
        return true;
    }

    /// <summary>The batch a data file holds, from its statistics.</summary>
    public long BatchOf(AddFile file)
    {
        var stats = file.Stats is null ? null : JsonNode.Parse(file.Stats);
        return stats?["minValues"]?["batch_number"]?.GetValue<long>()
            ?? throw new DeltaTableException($"{Delta.Name}/{file.Path}: no batch_number statistics; not written by the sessionizer");
    }

    private static CommitInfoAction CommitInfo(long time, string operation, JsonObject parameters, int files, int rows) => new(new JsonObject
    {
        ["timestamp"] = time,
        ["operation"] = operation,
        ["operationParameters"] = parameters,
        ["isBlindAppend"] = operation == "WRITE",
        ["operationMetrics"] = new JsonObject { ["numFiles"] = Text(files), ["numOutputRows"] = Text(rows) },
        ["engineInfo"] = EngineInfo.Name,
    });

    private string DeterministicId() =>
        new Guid(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Delta.Name)).AsSpan(0, 16)).ToString();

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sessionization.Persistence;

/// <summary>
/// What the coordinator last did, kept beside its state for <c>status</c> in another process: the last batch's duration
/// and rate, and whether it is backing off after failures. Written after each commit and each failure, replaced whole
/// (write, then rename), so a reader sees one version or the other. It is a report, not state: nothing recovers from it.
/// </summary>
public sealed record CoordinatorActivity(
    [property: JsonPropertyName("last_batch")] long? LastBatch,
    [property: JsonPropertyName("last_batch_committed_at")] DateTimeOffset? LastBatchCommittedAt,
    [property: JsonPropertyName("last_batch_duration_ms")] double? LastBatchDurationMs,
    [property: JsonPropertyName("last_batch_visits")] long? LastBatchVisits,
    [property: JsonPropertyName("failures_in_a_row")] int FailuresInARow,
    [property: JsonPropertyName("next_attempt_at")] DateTimeOffset? NextAttemptAt,
    [property: JsonPropertyName("last_failure")] string? LastFailure)
{
    public const string FileName = "activity.json";

    public static CoordinatorActivity None { get; } = new(null, null, null, null, 0, null, null);

    /// <summary>Visits per second in the last batch.</summary>
    public double? LastBatchRate => LastBatchDurationMs is > 0 && LastBatchVisits is { } visits ? visits / (LastBatchDurationMs.Value / 1000) : null;

    /// <summary>The state directory of <paramref name="baseDirectory"/>: state databases, lock, log and this report.</summary>
    public static string StateDirectory(string baseDirectory) => Path.Combine(baseDirectory, "state");

    public static CoordinatorActivity Read(string baseDirectory)
    {
        var path = Path.Combine(StateDirectory(baseDirectory), FileName);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<CoordinatorActivity>(File.ReadAllText(path)) ?? None : None;
        }
        catch (JsonException)
        {
            // A report from a version that wrote it differently is no report.
            return None;
        }
    }

    public void Write(string baseDirectory)
    {
        var directory = StateDirectory(baseDirectory);
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, FileName);
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(this));
        File.Move(temporary, path, overwrite: true);
    }
}

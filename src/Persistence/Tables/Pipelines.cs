using Sessionization.Persistence.Delta;

namespace Sessionization.Persistence.Tables;

/// <summary>
/// Finds which pipeline a base directory's output tables belong to (<see cref="PipelineIdentity"/> in their
/// metadata), refusing tables mixed from different pipelines, tables without an identity, and a visits table that
/// is not the one the output was built from. The state is kept under the pipeline's id, so this is what binds a
/// state to its tables.
/// </summary>
public static class Pipelines
{
    /// <summary>
    /// The base directory's pipeline. With <paramref name="create"/>, a base directory without output tables gets a
    /// new pipeline whose empty <c>sessions</c> and <c>pending_sessions</c> tables are created at once, so the state
    /// is bound from its first batch; without, it returns null for one.
    /// </summary>
    public static PipelineIdentity? Resolve(string baseDirectory, bool create)
    {
        var pending = SessionTable.Pending(baseDirectory);
        var completed = SessionTable.Completed(baseDirectory);
        var quarantine = QuarantineTable.In(baseDirectory);
        var visits = VisitsTable.In(baseDirectory);

        PipelineIdentity? found = null;
        string? foundIn = null;
        foreach (var log in new[] { pending.Log, completed.Log, quarantine.Log })
        {
            if (!log.Delta.Exists)
                continue;
            var identity = log.Pipeline() ?? throw new DeltaTableException(
                $"{log.Delta.Name}: the table records no sessionization pipeline (written by an older sessionizer or another tool); " +
                "move the output tables and the state away to start over");
            if (found is not null && found.PipelineId != identity.PipelineId)
            {
                throw new DeltaTableException(
                    $"{foundIn} belongs to pipeline {found.PipelineId} but {log.Delta.Name} to pipeline {identity.PipelineId}: the tables come from different base directories");
            }

            (found, foundIn) = (identity, log.Delta.Name);
        }

        var visitsId = visits.Delta.Exists ? visits.Delta.LoadSnapshot().Metadata.Id : null;
        if (found is not null)
        {
            if (found.SourceTableId.Length > 0 && visitsId != found.SourceTableId)
            {
                throw new DeltaTableException(visitsId is null
                    ? $"{VisitsTable.DirectoryName}: the table is missing, but the output tables were built from table {found.SourceTableId}"
                    : $"{VisitsTable.DirectoryName}: the table was replaced (its id is {visitsId}, the output tables were built from {found.SourceTableId}); " +
                      "move the output tables and the state away to start over");
            }

            if (create)
            {
                // A table lost on its own is created empty again; the state check then says what it is missing.
                pending.Log.EnsureCreated(found);
                completed.Log.EnsureCreated(found);
            }

            return found;
        }

        if (!create)
            return null;
        var created = new PipelineIdentity(Guid.NewGuid().ToString(), visitsId ?? "");
        pending.Log.EnsureCreated(created);
        completed.Log.EnsureCreated(created);
        // Another process may have created them first: whoever won, the tables say which pipeline it is.
        return pending.Log.Pipeline() ?? created;
    }
}

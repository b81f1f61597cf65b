namespace Sessionization.Domain;

/// <summary>
/// The last batch an output table holds (null: none), and whether every batch writes it (<c>sessions</c> and
/// <c>pending_sessions</c> get a commit per batch; <c>quarantine</c> only for batches with bad visits).
/// </summary>
public sealed record TableBatch(string Table, long? LastBatch, bool EveryBatch);

/// <summary>
/// Whether the coordinator's state and the output tables describe the same batches. They may differ only by the
/// batch in flight (the sink wrote some tables before a crash) or by a rewind under way; anything else means the
/// state was lost, restored from elsewhere, or belongs to other tables, and using it would silently drop or repeat
/// visits.
/// </summary>
public static class StateAgreement
{
    /// <summary>
    /// Null when <paramref name="state"/> agrees with <paramref name="tables"/>, or when the rewind to
    /// <paramref name="rewindTo"/> the user asked for brings them back together; otherwise what does not match and
    /// what to do about it, in one line.
    /// </summary>
    public static string? Check(CoordinatorState state, IReadOnlyList<TableBatch> tables, long? rewindTo = null)
    {
        var committed = state.NextBatch - 1;
        foreach (var table in tables)
        {
            var last = table.LastBatch ?? -1;
            if (Agrees(state, table, last, committed))
                continue;
            // A rewind takes the state and the tables back to the batch before it: it settles every table that holds that batch.
            if (rewindTo is { } from && state.CanRewindTo(from) && tables.All(t => !t.EveryBatch || (t.LastBatch ?? -1) >= from - 1))
                return null;
            return Describe(state, table.Table, last, committed);
        }

        return null;
    }

    private static bool Agrees(CoordinatorState state, TableBatch table, long last, long committed)
    {
        if (state.InFlight is { } inFlight && last == inFlight.Batch)
            return true;
        if (state.RewindingTo is { } rewinding && last >= rewinding - 1)
            return true;
        return table.EveryBatch ? last == committed : last <= committed;
    }

    private static string Describe(CoordinatorState state, string table, long last, long committed)
    {
        if (committed < 0 && state.InFlight is null)
        {
            return $"the state has no record of the batches 0..{last} that {table} holds: it was lost, or it belongs to other tables; " +
                "restore it, or rebuild the state and the tables from the visits with `./sessionize run --from-batch 0`";
        }

        if (last > committed)
        {
            return $"{table} holds batches through {last} but the state only through {committed}: the state is older than the tables; " +
                $"restore the newer state, or take the tables back to it with `./sessionize run --from-batch {committed + 1}`";
        }

        var advice = state.CanRewindTo(last + 1)
            ? $"take the state back to them with `./sessionize run --from-batch {last + 1}`"
            : $"batch {last + 1} is no longer retained, so restore the newer tables or start over in a new base directory";
        return last < 0
            ? $"{table} holds no batches but the state holds batches through {committed}: the tables were removed or replaced; {advice}"
            : $"{table} holds batches through {last} but the state through {committed}: the tables are older than the state; {advice}";
    }
}

using Sessionization.Domain;
using Sessionization.Persistence.Tables;

namespace Sessionization.Actors;

/// <summary>The last batch each output table holds, for checking the state against them (<see cref="StateAgreement"/>).</summary>
public static class OutputTables
{
    public static IReadOnlyList<TableBatch> Batches(string baseDirectory) =>
    [
        new(SessionTable.PendingDirectoryName, SessionTable.Pending(baseDirectory).LastCommittedBatch(), EveryBatch: true),
        new(SessionTable.CompletedDirectoryName, SessionTable.Completed(baseDirectory).LastCommittedBatch(), EveryBatch: true),
        new(QuarantineTable.DirectoryName, QuarantineTable.In(baseDirectory).Log.LastCommittedBatch(), EveryBatch: false),
    ];
}

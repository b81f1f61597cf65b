using CsCheck;
using Sessionization.Actors;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;

namespace Sessionization.Tests.Delta;

/// <summary>
/// The event-time pieces composed as a batch runs them, on real files: <see cref="EventTimeBatchWork"/> steps the
/// users a batch touches (read from the state store by id and by deadline) and saves their states, then the sessions
/// table commits the written rows and the corrections. Crashes fall at random between those steps; the batch then runs again from
/// the coordinator's last commit. The sessions table must end as the direct computation over the accepted visits.
/// </summary>
public sealed class EventTimePipelineTests
{
    private const long Minute = 60_000_000L;
    private static readonly PipelineIdentity Pipeline = new("pipeline", "visits");

    private sealed record Case(EventTimeSettings Settings, Visit[][] Batches, int[] Crashes);

    private static readonly Gen<Case> Cases =
        Gen.Select(
            Gen.Select(Gen.OneOf(10L, 30L), Gen.OneOf<long?>(null, 45L), Gen.OneOf(0L, 15L), Gen.OneOf(0L, 20L))
                .Select(s => new EventTimeSettings(s.Item1 * Minute, s.Item2 * Minute, s.Item3 * Minute, s.Item4 * Minute)),
            Gen.Select(Gen.Int[1, 3], Gen.Int[0, 240], Gen.Int[0, 5]).Select(v => new Visit(v.Item1, v.Item2 * Minute, $"p{v.Item3}")).Array[0, 8].Array[1, 6],
            Gen.Int[0, 3].Array[8])
        .Select(c => new Case(c.Item1, c.Item2, c.Item3));

    [Fact]
    public void Crashes_between_the_state_store_and_the_table_commit_change_nothing()
    {
        Cases.Sample(c =>
        {
            using var temp = new TempDirectory();
            var (table, late) = Run(temp.Path, c).GetAwaiter().GetResult();

            var accepted = SessionKeys.Accepted(c.Batches.SelectMany(b => b), late);
            var policy = new EventTimeSessionPolicy(c.Settings);
            Assert.Equal(SessionKeys.Of(policy.Direct(accepted)), SessionKeys.Of(table));
        }, iter: 25, threads: 1);
    }

    private static async Task<(List<SessionRecord> Table, List<Visit> Late)> Run(string directory, Case c)
    {
        var policy = new EventTimeSessionPolicy(c.Settings);
        var store = EventTimeStateStore.Sqlite(Path.Combine(directory, "state", "event-time.db"), TimeSpan.FromSeconds(5));
        var sessions = SessionTable.Completed(directory);
        var late = new List<Visit>();
        var watermark = Watermark.None;
        var crashes = 0;
        for (var batch = 0; batch <= c.Batches.Length;)
        {
            var endOfInput = batch == c.Batches.Length;
            var visits = endOfInput ? [] : c.Batches[batch];
            var after = endOfInput
                ? Watermark.EndOfInput
                : Watermark.After(watermark, visits.Length == 0 ? null : visits.Max(v => v.VisitTimeMicros), policy.Settings.WatermarkDelayMicros);

            var work = await EventTimeBatchWork.RunAsync(store, policy, batch, VisitsByUser.From([visits]), watermark, after);
            if (crashes < c.Crashes.Length && c.Crashes[crashes++] == 1)
                continue;
            await sessions.CommitBatchAsync(batch, work.Written, Pipeline, removed: work.Removed);
            if (crashes < c.Crashes.Length && c.Crashes[crashes++] == 2)
                continue;

            // The coordinator's commit: the batch is done, its watermark is the next one's starting point.
            late.AddRange(work.Late);
            watermark = after;
            batch++;
        }

        Assert.Empty(await store.LoadDueAsync(Watermark.EndOfInput));
        return (await sessions.ReadAllAsync(), late);
    }
}

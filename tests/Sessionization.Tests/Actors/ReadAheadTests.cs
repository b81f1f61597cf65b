using Sessionization.Actors;
using Sessionization.Domain;

namespace Sessionization.Tests.Actors;

/// <summary>The visits read ahead for the next batch are used only by the batch they were read for.</summary>
public class ReadAheadTests
{
    private static readonly BatchPlan Plan = new(3, new SourceCursor(3, 0), new SourceCursor(3, 2), [new SourceFile(3, 0, "a.parquet", 10), new SourceFile(3, 1, "b.parquet", 10)]);

    private static readonly BatchVisits Visits = new(VisitsByUser.From([[new Visit(7, 1, "home")]]), [], 1, 0, 1);

    private static PreparedVisits ReadFor(BatchPlan? plan, long watermark = 100) =>
        new(BadRowsMode.Fail, watermark, Task.FromResult<(BatchPlan, BatchVisits)?>(plan is null ? null : (plan, Visits)));

    [Fact]
    public async Task The_batch_read_for_uses_them()
    {
        Assert.Same(Visits, await ReadFor(Plan).ForAsync(Plan with { }, BadRowsMode.Fail, 100));
    }

    [Fact]
    public async Task Another_plan_mode_or_watermark_reads_its_files_itself()
    {
        Assert.Null(await ReadFor(Plan with { Files = [.. Plan.Files.Take(1)], To = new SourceCursor(3, 1) }).ForAsync(Plan, BadRowsMode.Fail, 100));
        Assert.Null(await ReadFor(Plan).ForAsync(Plan with { Batch = 4 }, BadRowsMode.Fail, 100));
        Assert.Null(await ReadFor(Plan).ForAsync(Plan, BadRowsMode.Quarantine, 100));
        Assert.Null(await ReadFor(Plan, watermark: 99).ForAsync(Plan, BadRowsMode.Fail, 100));
        Assert.Null(await ReadFor(null).ForAsync(Plan, BadRowsMode.Fail, 100));
    }

    [Fact]
    public async Task A_failed_read_ahead_is_read_again_by_the_batch()
    {
        var failed = new PreparedVisits(BadRowsMode.Fail, 100, Task.FromException<(BatchPlan, BatchVisits)?>(new IOException("a.parquet: truncated")));
        Assert.Null(await failed.ForAsync(Plan, BadRowsMode.Fail, 100));
    }
}

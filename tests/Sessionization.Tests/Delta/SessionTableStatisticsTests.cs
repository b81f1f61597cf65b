using System.Text.Json.Nodes;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Delta;

/// <summary>
/// The statistics a batch's add action carries for its file: readers that skip files by them (Spark, DuckDB's Delta
/// reader) would miss rows if a bound were too narrow.
/// </summary>
public sealed class SessionTableStatisticsTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    [Fact]
    public async Task A_batch_file_carries_each_columns_bounds_and_no_nulls()
    {
        var sessions = SessionTable.Completed(_temp.Path);
        var t = Timestamps.ToMicros(new DateTime(2026, 6, 1, 12, 0, 0, DateTimeKind.Utc));
        SessionRecord[] rows =
        [
            new(7, "a -> b", 3, t + 1_500, t + 60_000_999, 2),
            new(2, "c", 3, t - 2_000_000, t - 2_000_000, 1),
            new(9, "d -> e -> f", 3, t + 5_000_000, t + 9_000_000, 3),
        ];

        Assert.True(await sessions.CommitBatchAsync(3, rows, new PipelineIdentity("pipeline", "visits")));

        var stats = JsonNode.Parse(sessions.Delta.ReadCommit(0).OfType<AddFile>().Single().Stats!)!;
        Assert.Equal(3, stats["numRecords"]!.GetValue<long>());
        Assert.Equal(2, stats["minValues"]!["user_id"]!.GetValue<long>());
        Assert.Equal(9, stats["maxValues"]!["user_id"]!.GetValue<long>());
        Assert.Equal(3, stats["minValues"]!["batch_number"]!.GetValue<long>());
        Assert.Equal(1, stats["minValues"]!["visit_count"]!.GetValue<long>());
        Assert.Equal(3, stats["maxValues"]!["visit_count"]!.GetValue<long>());
        // Delta's timestamp statistics are milliseconds: the least is floored to it, the greatest too.
        Assert.Equal("2026-06-01T11:59:58.000Z", stats["minValues"]!["start_time"]!.GetValue<string>());
        Assert.Equal("2026-06-01T12:00:05.000Z", stats["maxValues"]!["start_time"]!.GetValue<string>());
        Assert.Equal("2026-06-01T11:59:58.000Z", stats["minValues"]!["end_time"]!.GetValue<string>());
        Assert.Equal("2026-06-01T12:01:00.000Z", stats["maxValues"]!["end_time"]!.GetValue<string>());
        foreach (var column in new[] { "user_id", "concatenated_pages", "batch_number", "start_time", "end_time", "visit_count" })
            Assert.Equal(0, stats["nullCount"]![column]!.GetValue<long>());
    }

    public void Dispose() => _temp.Dispose();
}

using Sessionization.Persistence.Delta;

namespace Sessionization.Tests.Delta;

/// <summary>Our Delta reader against tables written by Spark (shared/fixtures/delta-golden).</summary>
public class GoldenTableTests
{
    private static async Task<(DeltaSnapshot Snapshot, List<Dictionary<string, object?>> Rows)> Read(string name, TempDirectory temp)
    {
        var copy = temp.Combine(name);
        RepositoryPaths.Copy(RepositoryPaths.GoldenTable(name), copy);
        var table = new DeltaTable(copy);
        var snapshot = table.LoadSnapshot();
        return (snapshot, await DeltaRows.ReadAsync(table, snapshot));
    }

    private static DeltaSnapshot Snapshot(string name, TempDirectory temp)
    {
        var copy = temp.Combine(name);
        RepositoryPaths.Copy(RepositoryPaths.GoldenTable(name), copy);
        return new DeltaTable(copy).LoadSnapshot();
    }

    [Theory]
    [InlineData("snapshot-data0", 10, "data-0-")]
    [InlineData("snapshot-data1", 20, "data-")]
    [InlineData("snapshot-data2", 10, "data-2-")]
    [InlineData("snapshot-data2-deleted", 20, "data-3-")]
    public async Task Appends_overwrites_and_deletes_replay_to_the_rows_spark_sees(string name, int rows, string prefix)
    {
        using var temp = new TempDirectory();
        var (_, read) = await Read(name, temp);

        Assert.Equal(rows, read.Count);
        Assert.All(read, r => Assert.StartsWith(prefix, (string)r["col2"]!));
    }

    [Fact]
    public async Task An_append_after_an_overwrite_keeps_both_sets()
    {
        using var temp = new TempDirectory();
        var (_, read) = await Read("snapshot-data3", temp);

        Assert.Equal(10, read.Count(r => ((string)r["col2"]!).StartsWith("data-2-", StringComparison.Ordinal)));
        Assert.Equal(20, read.Count(r => ((string)r["col2"]!).StartsWith("data-3-", StringComparison.Ordinal)));
    }

    [Fact]
    public void A_checkpoint_plus_later_commits_leaves_exactly_the_last_file()
    {
        using var temp = new TempDirectory();
        var snapshot = Snapshot("checkpoint", temp);

        Assert.Equal(14, snapshot.Version);
        Assert.Equal(["15"], snapshot.Files.Select(f => f.Path));
    }

    [Fact]
    public void A_table_with_a_checkpoint_and_last_checkpoint_file_keeps_all_eleven_files()
    {
        using var temp = new TempDirectory();
        var snapshot = Snapshot("corrupted-last-checkpoint", temp);

        Assert.Equal(Enumerable.Range(0, 11).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).Order(StringComparer.Ordinal),
            snapshot.Files.Select(f => f.Path).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Inserts_and_deletes_across_a_checkpoint_give_the_surviving_ids()
    {
        using var temp = new TempDirectory();
        var (_, read) = await Read("basic-with-inserts-deletes-checkpoint", temp);

        var expected = new[] { 0, 10, 20, 30, 40 }.SelectMany(s => Enumerable.Range(s, 5)).Concat(Enumerable.Range(50, 16)).Select(i => (long)i);
        Assert.Equal(expected.Order(), read.Select(r => Convert.ToInt64(r["id"], System.Globalization.CultureInfo.InvariantCulture)).Order());
    }

    [Fact]
    public async Task A_multi_part_checkpoint_is_read_whole()
    {
        using var temp = new TempDirectory();
        var (_, read) = await Read("multi-part-checkpoint", temp);

        Assert.Equal(31, read.Count);
        Assert.Equal(2, read.Count(r => Convert.ToInt64(r["id"], System.Globalization.CultureInfo.InvariantCulture) == 0));
    }

    [Fact]
    public async Task A_log_of_checkpoints_only_is_read()
    {
        using var temp = new TempDirectory();
        var (_, read) = await Read("only-checkpoint-files", temp);

        Assert.Equal(25, read.Count);
    }

    [Fact]
    public async Task Microsecond_timestamps_and_escaped_and_null_partition_values_are_read()
    {
        using var temp = new TempDirectory();
        var (snapshot, read) = await Read("kernel-timestamp-TIMESTAMP_MICROS", temp);

        Assert.Equal(5, read.Count);
        Assert.Equal(["part"], snapshot.Metadata.PartitionColumns);
        Assert.Contains(read, r => r["part"] is null);
        Assert.Contains(read, r => r["part"] is DateTime d && d == new DateTime(2020, 1, 1, 8, 9, 10, 1, DateTimeKind.Utc));
        Assert.Contains(read, r => (int)r["id"]! == 3 && r["time"] is DateTime t && t == new DateTime(1969, 1, 1, 0, 0, 0, DateTimeKind.Utc)
            && r["part"] is DateTime p && p == t);
        Assert.Null(read.Single(r => (int)r["id"]! == 4)["time"]);
    }

    [Fact]
    public void Versions_that_are_not_contiguous_are_refused()
    {
        using var temp = new TempDirectory();
        var e = Assert.Throws<DeltaTableException>(() => Snapshot("versions-not-contiguous", temp));
        Assert.Contains("not contiguous", e.Message);
        Assert.Contains("commit 1", e.Message);
    }

    [Fact]
    public void A_newer_reader_protocol_is_refused_by_version()
    {
        using var temp = new TempDirectory();
        var e = Assert.Throws<DeltaUnsupportedException>(() => Snapshot("deltalog-invalid-protocol-version", temp));
        Assert.Contains("reader protocol version 99", e.Message);
    }

    [Fact]
    public void Deletion_vectors_and_column_mapping_are_refused_by_name()
    {
        using var temp = new TempDirectory();
        var e = Assert.Throws<DeltaUnsupportedException>(() => Snapshot("dv-with-columnmapping", temp));
        Assert.Contains("deletionVectors", e.Message);
        Assert.Contains("columnMapping", e.Message);
    }
}

using System.Globalization;
using DuckDB.NET.Data;
using Parquet;
using Parquet.Schema;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Tables;

namespace Sessionization.Tests.Cli;

/// <summary>
/// Our tables read by an outside reader: DuckDB, which prunes row groups and pages on Parquet statistics, must
/// count exactly the rows our reader gives under any filter on any column of every table we write, before and
/// after a rewind, with the log read from a checkpoint. Also: time travel over every version after a rewind.
/// </summary>
public sealed class OutsideReaderTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private string Data => _temp.Combine("data");

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task Duckdb_counts_what_our_reader_gives_under_filters_on_every_column_of_every_table_before_and_after_a_rewind()
    {
        SessionizeProcess.Ok(Data, "generate", "--users", "40", "--visits", "3000", "--commits", "12", "--seed", "7");
        // Times at the edges: before 1970 (negative microseconds), sub-millisecond, and far in the future.
        var csv = _temp.Combine("edges.csv");
        File.WriteAllText(csv, "user_id,visit_time,page\n3,1969-12-31T23:59:59.999999Z,old\n4,2026-01-01T00:00:00.000001Z,edge\n5,9999-12-31T23:59:59.999999Z,future\n");
        SessionizeProcess.Ok(Data, "append-visits", csv);
        await AppendFileWithNullsAsync();
        SessionizeProcess.Ok(Data, "run", "--bad-rows", "quarantine", "--max-files-per-batch", "1");

        // 14 batches: each output table has 15 commits, so its log is read from the checkpoint at version 10.
        Assert.True(File.Exists(Path.Combine(Data, "sessions", "_delta_log", DeltaCheckpoint.FileName(10))));
        await AssertDuckDbAgreesAsync();

        var before = await VersionsAsync();
        SessionizeProcess.Ok(Data, "run", "--from-batch", "5", "--bad-rows", "quarantine", "--max-files-per-batch", "2");
        await AssertDuckDbAgreesAsync();

        // Every version of every table still reads back with the sizes its log records and the rows it had.
        var after = await VersionsAsync();
        foreach (var (table, versions) in before)
        {
            for (var v = 0; v < versions.Count; v++)
                Assert.Equal(versions[v], after[table][v]);
            Assert.True(after[table].Count > versions.Count, $"{table}: the rewind and the batches after it are new versions");
        }
    }

    /// <summary>The README's query for a reader without Delta support: a file is live when its last action in the log is an add.</summary>
    public static string LiveFilesSql(string table) => $"""
        WITH log AS (SELECT * FROM read_json_auto('{table}/_delta_log/*.json', union_by_name = true, filename = true)),
        actions AS (SELECT coalesce(add.path, remove.path) AS path, add IS NOT NULL AS added, filename AS commit_file
                    FROM log WHERE add IS NOT NULL OR remove IS NOT NULL)
        SELECT list('{table}/' || path ORDER BY path) FROM (SELECT path, arg_max(added, commit_file) AS live FROM actions GROUP BY path) WHERE live
        """;

    [Fact]
    public async Task After_event_time_corrections_and_a_rewind_that_restores_rewritten_files_duckdb_reads_what_our_reader_gives()
    {
        // The demo's second batch corrects a written session: its file is removed and added back rewritten. A rewind to
        // that batch restores the removed file (the same name added again), and the batch run again removes it again:
        // one name with several adds and removes, which a reader must resolve by the last.
        SessionizeProcess.Ok(null, "demo", "--mode", "event-time", "--base-dir", Data);
        SessionizeProcess.Ok(Data, "run", "--mode", "event-time", "--from-batch", "1");

        using var duck = new DuckDBConnection("Data Source=:memory:");
        duck.Open();
        using var command = duck.CreateCommand();
        command.CommandText = $"SET VARIABLE live = ({LiveFilesSql(Path.Combine(Data, "sessions"))}); " +
            "SELECT user_id || '|' || concatenated_pages || '|' || batch_number FROM read_parquet(getvariable('live')) ORDER BY 1";
        var fromDuckDb = new List<string>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
                fromDuckDb.Add(reader.GetString(0));
        }

        var ours = (await SessionTable.Completed(Data).ReadAllAsync()).Select(r => $"{r.UserId}|{r.ConcatenatedPages}|{r.BatchNumber}").Order(StringComparer.Ordinal);
        Assert.Equal(ours, fromDuckDb);
        Assert.Contains("1|page_1.html -> page_2.html -> page_6.html -> page_4.html|1", fromDuckDb);
    }

    [Fact]
    public async Task A_checkpoint_is_written_every_ten_commits_and_a_reader_starting_from_it_sees_the_same_table()
    {
        SessionizeProcess.Ok(Data, "generate", "--users", "20", "--visits", "500", "--commits", "21", "--seed", "3");
        SessionizeProcess.Ok(Data, "run", "--max-files-per-batch", "1");

        var log = Path.Combine(Data, "pending_sessions", "_delta_log");
        // Version 0 creates the table; batches 0..20 are versions 1..21, so the checkpoint at version 20 holds batch 19.
        Assert.Equal([10L, 20L], Directory.GetFiles(log, "*.checkpoint.parquet").Select(f => long.Parse(Path.GetFileName(f)[..20], CultureInfo.InvariantCulture)).Order());
        var last = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(log, DeltaCheckpoint.LastCheckpointFile)))!;
        Assert.Equal(20, last["version"]!.GetValue<long>());

        // A reader given only the checkpoint and the commits after it (older commits cleaned up) sees the same table.
        var full = SessionTable.Pending(Data);
        var expected = await full.ReadAllAsync();
        var copy = _temp.Combine("copy");
        RepositoryPaths.Copy(Path.Combine(Data, "pending_sessions"), Path.Combine(copy, "pending_sessions"));
        foreach (var commit in Directory.GetFiles(Path.Combine(copy, "pending_sessions", "_delta_log"), "*.json"))
        {
            if (long.Parse(Path.GetFileName(commit)[..20], CultureInfo.InvariantCulture) < 20)
                File.Delete(commit);
        }

        Assert.Equal(expected.OrderBy(r => r.UserId), (await SessionTable.Pending(copy).ReadAllAsync()).OrderBy(r => r.UserId));

        // DuckDB reads the checkpoint as Spark's layout: one add per live file, with its size, and the table's protocol and metadata.
        using var duck = Open();
        var checkpoint = Path.Combine(log, DeltaCheckpoint.FileName(20));
        var adds = Rows(duck, $"SELECT add.path, add.size FROM read_parquet('{checkpoint}') WHERE add IS NOT NULL ORDER BY 1");
        var live = full.Delta.LoadSnapshot(20).Files.OrderBy(f => f.Path, StringComparer.Ordinal).Select(f => $"{f.Path}|{f.Size}");
        Assert.Equal(live, adds);
        Assert.Equal(["1|2"], Rows(duck, $"SELECT protocol.minReaderVersion, protocol.minWriterVersion FROM read_parquet('{checkpoint}') WHERE protocol IS NOT NULL"));
        Assert.Equal(
            [full.Delta.LoadSnapshot().Metadata.Id],
            Rows(duck, $"SELECT metaData.id FROM read_parquet('{checkpoint}') WHERE metaData IS NOT NULL"));
        Assert.Equal(["sessionization|19"], Rows(duck, $"SELECT txn.appId, txn.version FROM read_parquet('{checkpoint}') WHERE txn IS NOT NULL"));
    }

    [Fact]
    public void Commit_timestamps_never_go_back_even_after_a_visit_dated_far_in_the_future()
    {
        var csv = _temp.Combine("future.csv");
        File.WriteAllText(csv, "user_id,visit_time,page\n1,9999-01-01T00:00:00Z,a\n");
        SessionizeProcess.Ok(Data, "append-visits", csv);
        SessionizeProcess.Ok(Data, "run");
        File.WriteAllText(csv, "user_id,visit_time,page\n2,2026-01-01T00:00:00Z,b\n");
        SessionizeProcess.Ok(Data, "append-visits", csv);
        SessionizeProcess.Ok(Data, "run");

        foreach (var name in new[] { "visits_table", "sessions", "pending_sessions" })
        {
            var table = new DeltaTable(Path.Combine(Data, name));
            var times = table.ListLog().Commits.Select(v => table.ReadCommit(v).OfType<CommitInfoAction>().Single().Content["timestamp"]!.GetValue<long>()).ToList();
            for (var i = 1; i < times.Count; i++)
                Assert.True(times[i] > times[i - 1], $"{name}: commit {i} at {times[i]} is not after commit {i - 1} at {times[i - 1]}");
            Assert.True(times[^1] < DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeMilliseconds(), $"{name}: a commit is stamped in the future");
        }
    }

    private async Task AppendFileWithNullsAsync()
    {
        var dir = Path.Combine(Data, "visits_table");
        var name = $"part-00000-{Guid.NewGuid()}-c000.snappy.parquet";
        var id = new DataField<long>("user_id", true);
        var time = new DateTimeDataField("visit_time", DateTimeFormat.Timestamp, true, DateTimeTimeUnit.Micros, true);
        var page = new DataField<string>("page", true);
        await using (var stream = File.Create(Path.Combine(dir, name)))
        {
            await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(id, time, page), stream);
            using var group = writer.CreateRowGroup();
            var t = new DateTime(2026, 1, 1, 0, 30, 0, DateTimeKind.Utc).AddTicks(10);
            await group.WriteAsync<long>(id, new long?[] { 8, null, 9 });
            await group.WriteAsync<DateTime>(time, new DateTime?[] { t, t, null });
            await group.WriteAsync(page, new string?[] { null, "b", "c" }!);
        }

        var table = new DeltaTable(dir);
        table.Commit(table.LatestVersion()!.Value + 1, [new AddFile(name, new Dictionary<string, string?>(), new FileInfo(Path.Combine(dir, name)).Length, 1, true, null, false)]);
    }

    /// <summary>A table's rows as column values: long, string, timestamp as microseconds, or null.</summary>
    private sealed record TableRows(string Name, string Directory, IReadOnlyList<AddFile> Files, string[] Columns, string[] Timestamps, List<object?[]> Rows);

    private async Task<List<TableRows>> ReadOursAsync()
    {
        var tables = new List<TableRows>();
        foreach (var (name, table) in new[] { ("sessions", SessionTable.Completed(Data)), ("pending_sessions", SessionTable.Pending(Data)) })
        {
            var rows = (await table.ReadAllAsync()).Select(r => new object?[] { r.UserId, r.ConcatenatedPages, r.BatchNumber, r.StartTimeMicros, r.EndTimeMicros, r.VisitCount }).ToList();
            tables.Add(new TableRows(name, table.Delta.Root, table.Delta.LoadSnapshot().Files, ["user_id", "concatenated_pages", "batch_number", "start_time", "end_time", "visit_count"], ["start_time", "end_time"], rows));
        }

        var quarantine = QuarantineTable.In(Data);
        tables.Add(new TableRows(
            "quarantine",
            quarantine.Delta.Root,
            quarantine.Delta.LoadSnapshot().Files,
            ["batch_number", "source_file", "row", "user_id", "visit_time", "page", "reason"],
            ["visit_time"],
            (await quarantine.ReadAllAsync()).Select(r => new object?[] { r.BatchNumber, r.SourceFile, r.Row, r.UserId, r.VisitTimeMicros, r.Page, r.Reason }).ToList()));

        var visits = VisitsTable.In(Data);
        var visitRows = new List<object?[]>();
        foreach (var file in visits.FilesFrom(SourceCursor.Start))
        {
            var read = await visits.ReadFileAsync(file, BadRowsMode.Quarantine, 0);
            visitRows.AddRange(read.Visits.Select(v => new object?[] { v.UserId, v.VisitTimeMicros, v.Page }));
            visitRows.AddRange(read.Quarantined.Select(q => new object?[] { q.UserId, q.VisitTimeMicros, q.Page }));
        }

        tables.Add(new TableRows("visits_table", visits.Delta.Root, visits.Delta.LoadSnapshot().Files, ["user_id", "visit_time", "page"], ["visit_time"], visitRows));
        return tables;
    }

    private async Task AssertDuckDbAgreesAsync()
    {
        using var duck = Open();
        foreach (var table in await ReadOursAsync())
        {
            Assert.NotEmpty(table.Rows);
            var files = string.Join(", ", table.Files.Select(f => $"'{Path.Combine(table.Directory, f.Path)}'"));
            var source = $"read_parquet([{files}])";
            Assert.Equal(table.Rows.Count, Count(duck, $"SELECT count(*) FROM {source}"));
            for (var c = 0; c < table.Columns.Length; c++)
            {
                var column = table.Columns[c];
                var isTime = table.Timestamps.Contains(column);
                Assert.Equal(table.Rows.Count(r => r[c] is null), Count(duck, $"SELECT count(*) FROM {source} WHERE {column} IS NULL"));
                var values = table.Rows.Select(r => r[c]).Where(v => v is not null).Distinct().Order(Comparer<object?>.Create(Compare)).ToList();
                var probes = new List<object?> { values[0], values[^1], values[values.Count / 2], values[values.Count / 3] };
                if (isTime)
                    probes.AddRange(new object?[] { (long)values[0]! + 1, (long)values[^1]! - 1, (long)values[values.Count / 2]! + 500 });
                foreach (var probe in probes)
                {
                    foreach (var (op, holds) in Operators)
                    {
                        var expected = table.Rows.Count(r => r[c] is not null && holds(Compare(r[c], probe)));
                        var actual = Count(duck, $"SELECT count(*) FROM {source} WHERE {column} {op} {Literal(probe, isTime)}");
                        Assert.True(expected == actual, $"{table.Name}: WHERE {column} {op} {Literal(probe, isTime)}: ours {expected}, DuckDB {actual}");
                    }
                }
            }
        }
    }

    private static readonly (string Op, Func<int, bool> Holds)[] Operators =
        [("<", c => c < 0), ("<=", c => c <= 0), ("=", c => c == 0), (">=", c => c >= 0), (">", c => c > 0)];

    private static int Compare(object? a, object? b) => (a, b) switch
    {
        (long x, long y) => x.CompareTo(y),
        (string x, string y) => string.CompareOrdinal(x, y),
        _ => throw new InvalidOperationException($"cannot compare {a} with {b}"),
    };

    private static string Literal(object? value, bool isTime) => value switch
    {
        long micros when isTime => $"'{Timestamps.ToDateTime(micros).ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture)}+00'::TIMESTAMPTZ",
        long number => number.ToString(CultureInfo.InvariantCulture),
        string text => $"'{text.Replace("'", "''", StringComparison.Ordinal)}'",
        _ => throw new InvalidOperationException($"no literal for {value}"),
    };

    /// <summary>Each table's rows at every version, read with our reader (which checks each file's logged size).</summary>
    private async Task<Dictionary<string, List<List<string>>>> VersionsAsync()
    {
        var result = new Dictionary<string, List<List<string>>>();
        foreach (var (name, table) in new[] { ("sessions", SessionTable.Completed(Data)), ("pending_sessions", SessionTable.Pending(Data)) })
        {
            var versions = new List<List<string>>();
            for (var v = 0L; v <= table.Delta.LatestVersion(); v++)
                versions.Add([.. (await table.ReadAllAsync(v)).Select(r => r.ToString()).Order(StringComparer.Ordinal)]);
            result[name] = versions;
        }

        var quarantine = QuarantineTable.In(Data);
        var q = new List<List<string>>();
        for (var v = 0L; v <= quarantine.Delta.LatestVersion(); v++)
            q.Add([.. (await quarantine.ReadAllAsync(v)).Select(r => r.ToString()).Order(StringComparer.Ordinal)]);
        result["quarantine"] = q;
        return result;
    }

    private static DuckDBConnection Open()
    {
        var connection = new DuckDBConnection("Data Source=:memory:");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SET TimeZone = 'UTC'";
        command.ExecuteNonQuery();
        return connection;
    }

    private static long Count(DuckDBConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private static List<string> Rows(DuckDBConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        using var reader = command.ExecuteReader();
        var rows = new List<string>();
        while (reader.Read())
            rows.Add(string.Join('|', Enumerable.Range(0, reader.FieldCount).Select(i => Convert.ToString(reader.GetValue(i), CultureInfo.InvariantCulture))));
        return rows;
    }
}

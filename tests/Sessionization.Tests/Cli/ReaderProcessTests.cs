namespace Sessionization.Tests.Cli;

/// <summary>The read commands read only what they show: rows come batch by batch (or file by file), and a limit stops the reading.</summary>
public sealed class ReaderProcessTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    private string Data => _temp.Combine("data");

    /// <summary>Three batches of the seed's rows, then the newest data file of <paramref name="table"/> broken.</summary>
    private string ThreeBatchesWithTheLastFileOf(string table)
    {
        for (var i = 0; i < 3; i++)
        {
            SessionizeProcess.Ok(Data, "generate-new-rows");
            SessionizeProcess.Ok(Data, "run");
        }

        var last = new DirectoryInfo(Path.Combine(Data, table)).GetFiles("*.parquet").OrderBy(f => f.LastWriteTimeUtc).Last().FullName;
        File.WriteAllBytes(last, File.ReadAllBytes(last)[..10]);
        return Path.GetFileName(last);
    }

    [Fact]
    public void A_limit_reads_the_session_tables_only_as_far_as_the_rows_it_shows()
    {
        var broken = ThreeBatchesWithTheLastFileOf("pending_sessions");

        // Batch 0's three pending rows are all a limit of 3 needs (and one more, for the footer, from batch 1).
        var shown = SessionizeProcess.Ok(Data, "read-session-tables", "--table", "pending", "--limit", "3").Out;
        Assert.Contains("|1      |page_1.html -> page_2.html|0           |", shown);
        Assert.Contains("only showing top 3 rows", shown);
        Assert.Equal(3, SessionizeProcess.Ok(Data, "read-session-tables", "--table", "pending", "--format", "csv", "--limit", "2").Out.TrimEnd('\n').Split('\n').Length);

        var all = SessionizeProcess.Run(Data, "read-session-tables", "--table", "pending", "--limit", "0");
        Assert.Equal(1, all.ExitCode);
        Assert.Contains(broken, all.Err);
    }

    [Fact]
    public void A_limit_reads_the_visits_table_only_as_far_as_the_rows_it_shows()
    {
        var broken = ThreeBatchesWithTheLastFileOf("visits_table");

        Assert.Equal(5, SessionizeProcess.Ok(Data, "read-tables", "--format", "csv", "--limit", "4").Out.TrimEnd('\n').Split('\n').Length);
        var json = System.Text.Json.Nodes.JsonNode.Parse(SessionizeProcess.Ok(Data, "read-tables", "--format", "json", "--limit", "8").Out)!;
        Assert.Equal(8, json["visits"]!.AsArray().Count);

        var all = SessionizeProcess.Run(Data, "read-tables", "--format", "json");
        Assert.Equal(1, all.ExitCode);
        Assert.Contains(broken, all.Err);
    }

    [Fact]
    public void Rows_come_in_batch_then_user_order_across_files_in_every_format()
    {
        SessionizeProcess.Ok(Data, "append-visits", Csv("user_id,visit_time,page\n9,2026-01-01T00:00:00Z,a\n2,2026-01-01T00:00:01Z,b\n"));
        SessionizeProcess.Ok(Data, "run");
        SessionizeProcess.Ok(Data, "append-visits", Csv("user_id,visit_time,page\n5,2026-01-01T00:01:00Z,c\n1,2026-01-01T00:01:01Z,d\n"));
        SessionizeProcess.Ok(Data, "run");

        var csv = SessionizeProcess.Ok(Data, "read-session-tables", "--table", "pending", "--format", "csv").Out;
        Assert.Equal("user_id,concatenated_pages,batch_number\n2,b,0\n9,a,0\n1,d,1\n5,c,1\n", csv);
        var json = System.Text.Json.Nodes.JsonNode.Parse(SessionizeProcess.Ok(Data, "read-session-tables", "--format", "json").Out)!;
        Assert.Equal([2L, 9L, 1L, 5L], json["pending_sessions"]!.AsArray().Select(r => (long)r!["user_id"]!));
        Assert.Equal([2L, 9L], json["sessions"]!.AsArray().Select(r => (long)r!["user_id"]!));
    }

    private string Csv(string text)
    {
        var path = _temp.Combine($"visits-{Guid.NewGuid():N}.csv");
        File.WriteAllText(path, text);
        return path;
    }

    public void Dispose() => _temp.Dispose();
}

using System.Diagnostics;
using Parquet;
using Parquet.Schema;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;

namespace Sessionization.Bench;

/// <summary>
/// What no implementation on this stack can beat: read the run's visits with Parquet.Net and write as many
/// session and pending-session rows with Parquet.Net, with no sessionization and no state.
/// </summary>
public static class Floor
{
    private static readonly DataField<long> UserId = new("user_id", false);
    private static readonly DataField<string> Pages = new("concatenated_pages", false);
    private static readonly DataField<long> Batch = new("batch_number", false);
    private static readonly ParquetSchema Schema = new(UserId, Pages, Batch);

    public static async Task<TimeSpan> RunAsync(VisitsTable visits, IReadOnlyList<SourceFile> files, IReadOnlyList<SessionRecord> pending, IReadOnlyList<SessionRecord> completed, string outputDirectory)
    {
        Directory.CreateDirectory(outputDirectory);
        var clock = Stopwatch.StartNew();
        long read = 0;
        foreach (var file in files)
            read += (await visits.ReadFileAsync(file)).Count;
        await WriteAsync(Path.Combine(outputDirectory, $"pending-{Guid.NewGuid():N}.parquet"), pending);
        await WriteAsync(Path.Combine(outputDirectory, $"sessions-{Guid.NewGuid():N}.parquet"), completed);
        GC.KeepAlive(read);
        return clock.Elapsed;
    }

    private static async Task WriteAsync(string path, IReadOnlyList<SessionRecord> rows)
    {
        await using var stream = File.Create(path);
        await using var writer = await ParquetWriter.CreateAsync(Schema, stream, ParquetFiles.WriteOptions);
        using var group = writer.CreateRowGroup();
        await group.WriteAsync<long>(UserId, rows.Select(r => r.UserId).ToArray());
        await group.WriteAsync(Pages, rows.Select(r => r.ConcatenatedPages).ToArray());
        await group.WriteAsync<long>(Batch, rows.Select(r => r.BatchNumber).ToArray());
    }
}

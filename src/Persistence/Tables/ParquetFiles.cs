using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Parquet;
using Sessionization.Persistence.Parquet;

namespace Sessionization.Persistence.Tables;

/// <summary>A data file written into a table's directory: its name in the log and its size in bytes.</summary>
public sealed record DataFile(string Name, long Size);

/// <summary>Shared Parquet settings and the writing and naming of the product's data files.</summary>
public static class ParquetFiles
{
    /// <summary>Snappy at the fastest level: the default SmallestSize level costs far more time than it saves space.</summary>
    public static ParquetOptions WriteOptions { get; } = new()
    {
        CompressionMethod = CompressionMethod.Snappy,
        CompressionLevel = CompressionLevel.Fastest,
    };

    /// <summary>A data file name in Spark's style; random, so that concurrent appenders never collide.</summary>
    public static string RandomName() => $"part-00000-{Guid.NewGuid()}-c000.snappy.parquet";

    /// <summary>
    /// A data file name derived from what it holds: the table, the batch, the table version it is committed as and
    /// the file's own bytes. The same batch written again for the same version (a replay after a crash) gets the
    /// same name and the same bytes; a batch written again after a rewind is committed as a later version, so its
    /// file never takes the name of one that older versions still point to. Delta data files are immutable.
    /// </summary>
    public static string ContentName(string table, long batch, long version, ReadOnlySpan<byte> contentHash)
    {
        var identity = Encoding.UTF8.GetBytes(FormattableString.Invariant($"{table}/{batch}/{version}/{Convert.ToHexString(contentHash)}"));
        return $"part-00000-{new Guid(SHA256.HashData(identity).AsSpan(0, 16))}-c000.snappy.parquet";
    }

    /// <summary>
    /// Writes a data file into <paramref name="directory"/>: Parquet.Net writes it under a temporary name, the
    /// statistics of its timestamp columns are corrected (see <see cref="TimestampStatistics"/>), it is flushed to
    /// disk and only then moved to the name <paramref name="name"/> gives for its SHA-256, so a crash never leaves
    /// a torn file under a name a commit could refer to.
    /// </summary>
    public static async Task<DataFile> WriteAsync(
        string directory, Func<Stream, Task> write, IReadOnlyList<TimestampValues> timestamps, Func<byte[], string> name, CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(directory);
        var temp = Path.Combine(directory, $".{Guid.NewGuid():N}.parquet.tmp");
        try
        {
            byte[] hash;
            await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16))
            {
                await write(stream);
                await stream.FlushAsync(cancellationToken);
                TimestampStatistics.Correct(stream, [.. timestamps]);
                stream.Flush(flushToDisk: true);
                stream.Position = 0;
                hash = await SHA256.HashDataAsync(stream, cancellationToken);
            }

            var fileName = name(hash);
            var path = Path.Combine(directory, fileName);
            File.Move(temp, path, overwrite: true);
            return new DataFile(fileName, new FileInfo(path).Length);
        }
        finally
        {
            if (File.Exists(temp))
                File.Delete(temp);
        }
    }

    /// <summary>Opens a data file named by a table's log, refusing one whose size is not the size the log records.</summary>
    public static FileStream OpenLogged(string table, string path, long loggedSize)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        if (SizeMismatch($"{table}/{Path.GetFileName(path)}", stream.Length, loggedSize, "the log") is { } mismatch)
        {
            stream.Dispose();
            throw new Delta.DeltaTableException(mismatch);
        }

        return stream;
    }

    /// <summary>
    /// Why a data file of <paramref name="actual"/> bytes is not the one <paramref name="recordedBy"/> committed with
    /// <paramref name="loggedSize"/> bytes, or null when it is (or the log records no size).
    /// </summary>
    public static string? SizeMismatch(string file, long actual, long loggedSize, string recordedBy) =>
        loggedSize > 0 && actual != loggedSize
            ? $"{file}: the file has {actual} bytes but {recordedBy} records {loggedSize}; it was rewritten after it was committed"
            : null;
}

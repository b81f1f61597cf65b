using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Parquet;

namespace Sessionization.Persistence.Tables;

/// <summary>Shared Parquet settings and naming for the product's tables.</summary>
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
    /// A data file name derived from its table and batch, so that a replayed batch writes the same file again
    /// instead of leaving an orphan beside it.
    /// </summary>
    public static string DeterministicName(string table, long batch, int part = 0)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{table}/{batch}/{part}"));
        return $"part-{part:D5}-{new Guid(hash.AsSpan(0, 16))}-c000.snappy.parquet";
    }

    /// <summary>Writes to a temporary file, flushes it to disk and moves it into place, so a crash never leaves a torn data file under the final name.</summary>
    public static async Task<long> WriteAtomicallyAsync(string path, Func<Stream, Task> write)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temp = path + $".{Guid.NewGuid():N}.tmp";
        try
        {
            await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16))
            {
                await write(stream);
                await stream.FlushAsync();
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
            return new FileInfo(path).Length;
        }
        finally
        {
            if (File.Exists(temp))
                File.Delete(temp);
        }
    }
}

using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Schema;
using Sessionization.Domain;
using Sessionization.Persistence.Delta;
using Sessionization.Persistence.Parquet;

namespace Sessionization.Persistence.Tables;

/// <summary>A visits file or row that cannot be read as visits; the message names the file, and the row where it applies.</summary>
public sealed class BadVisitsException(string message, Exception? inner = null) : DeltaTableException(message, inner);

/// <summary>The good visits of a data file, and what was set aside.</summary>
public sealed record VisitsRead(List<Visit> Visits, List<QuarantinedVisit> Quarantined);

/// <summary>The <c>visits_table</c>: <c>user_id</c> long, <c>visit_time</c> timestamp (UTC, microseconds), <c>page</c> string.</summary>
public sealed class VisitsTable(string path)
{
    public const string DirectoryName = "visits_table";

    private static readonly DataField<long> UserIdField = new("user_id", false);
    private static readonly DateTimeDataField VisitTimeField = new("visit_time", DateTimeFormat.Timestamp, true, DateTimeTimeUnit.Micros, false);
    private static readonly DataField<string> PageField = new("page", false);
    private static readonly ParquetSchema FileSchema = new(UserIdField, VisitTimeField, PageField);

    public static DeltaSchema Schema { get; } = new([
        new DeltaField("user_id", "long", false),
        new DeltaField("visit_time", "timestamp", false),
        new DeltaField("page", "string", false),
    ]);

    public DeltaTable Delta { get; } = new(path, DirectoryName);

    public static VisitsTable In(string baseDirectory) => new(Path.Combine(baseDirectory, DirectoryName));

    /// <summary>Appends <paramref name="visits"/> as one commit, creating the table on first use. Returns the committed version.</summary>
    public async Task<long> AppendAsync(IReadOnlyList<Visit> visits, string operation)
    {
        // Appenders may run side by side, so the name is random rather than derived from a version.
        var times = new TimestampValues("visit_time", [.. visits.Select(v => v.VisitTimeMicros)]);
        var (fileName, size) = await ParquetFiles.WriteAsync(Delta.Root, s => WriteFileAsync(s, visits), [times], _ => ParquetFiles.RandomName());
        // Blind appends commute, so losing a race only means trying the next version.
        for (var attempt = 0; ; attempt++)
        {
            var latest = Delta.LatestVersion();
            var version = (latest ?? -1) + 1;
            var now = Delta.NextCommitTimestamp(latest);
            var actions = new List<DeltaAction>();
            if (latest is null)
            {
                actions.Add(ProtocolAction.AppendOnlyDefault);
                actions.Add(new MetadataAction(Guid.NewGuid().ToString(), Schema.ToJson(), [], new Dictionary<string, string>(), now));
            }
            else
            {
                EnsureCompatible(Delta.LoadSnapshot(latest));
            }

            actions.Add(new AddFile(fileName, new Dictionary<string, string?>(), size, now, true, Stats(visits), false));
            actions.Add(new CommitInfoAction(new JsonObject
            {
                ["timestamp"] = now,
                ["operation"] = "WRITE",
                ["operationParameters"] = new JsonObject { ["mode"] = "Append", ["source"] = operation },
                ["isBlindAppend"] = true,
                ["operationMetrics"] = new JsonObject { ["numFiles"] = "1", ["numOutputRows"] = visits.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) },
                ["engineInfo"] = EngineInfo.Name,
            }));
            try
            {
                Delta.Commit(version, actions);
                return version;
            }
            catch (DeltaConcurrentCommitException) when (attempt < 100)
            {
            }
        }
    }

    private void EnsureCompatible(DeltaSnapshot snapshot)
    {
        Delta.EnsureWritable(snapshot.Protocol);
        var schema = snapshot.Metadata.Schema;
        foreach (var field in Schema.Fields)
        {
            var found = schema.Find(field.Name) ?? throw new BadVisitsException($"{Delta.Name}: the table has no column '{field.Name}'");
            if (found.Type != field.Type && !(field.Type == "long" && found.Type == "integer"))
                throw new BadVisitsException($"{Delta.Name}: column '{field.Name}' is {found.Type}, expected {field.Type}");
        }

        if (snapshot.Metadata.PartitionColumns.Count > 0)
            throw new DeltaUnsupportedException($"{Delta.Name}: partitioned visits tables are not supported (partitioned by {string.Join(", ", snapshot.Metadata.PartitionColumns)})");
    }

    private static string Stats(IReadOnlyList<Visit> visits) => new FileStats(visits.Count)
        .Long("user_id", visits.Select(v => (long?)v.UserId))
        .Timestamp("visit_time", visits.Select(v => (long?)v.VisitTimeMicros))
        .Strings("page", visits.Select(v => v.Page))
        .ToJson();

    public static async Task WriteFileAsync(Stream stream, IReadOnlyList<Visit> visits)
    {
        await using var writer = await ParquetWriter.CreateAsync(FileSchema, stream, ParquetFiles.WriteOptions);
        using var group = writer.CreateRowGroup();
        var ids = new long[visits.Count];
        var times = new DateTime[visits.Count];
        var pages = new string[visits.Count];
        for (var i = 0; i < visits.Count; i++)
        {
            ids[i] = visits[i].UserId;
            times[i] = Timestamps.ToDateTime(visits[i].VisitTimeMicros);
            pages[i] = visits[i].Page;
        }

        await group.WriteAsync<long>(UserIdField, ids);
        await group.WriteAsync<DateTime>(VisitTimeField, times);
        await group.WriteAsync(PageField, pages);
    }

    /// <summary>
    /// The data files committed at or after <paramref name="from"/>, in log order, read lazily so that a
    /// bounded batch reads only the commits it needs. The visits table is a source: a commit that
    /// removes data is refused rather than silently ignored.
    /// </summary>
    public IEnumerable<SourceFile> FilesFrom(SourceCursor from)
    {
        var log = Delta.ListLog();
        if (log.Commits.Count == 0)
            yield break;
        var first = log.Commits[0];
        if (from.Version < first)
            throw new DeltaTableException($"{Delta.Name}: commits before version {first} have been cleaned up; cannot read from version {from.Version}");
        var expected = Math.Max(from.Version, first);
        foreach (var version in log.Commits.Where(v => v >= from.Version))
        {
            if (version != expected)
                throw new DeltaTableException($"{Delta.Name}: log versions are not contiguous: commit {expected} is missing");
            expected++;
            var index = 0;
            MetadataAction? metadata = null;
            foreach (var action in Delta.ReadCommit(version))
            {
                switch (action)
                {
                    case ProtocolAction p:
                        Delta.EnsureReadable(p, metadata);
                        break;
                    case MetadataAction m:
                        metadata = m;
                        break;
                    case AddFile add when add.DataChange:
                        if (add.HasDeletionVector)
                            throw new DeltaUnsupportedException($"{Delta.Name}: unsupported Delta reader features: deletionVectors (commit {version})");
                        var file = new SourceFile(version, index++, add.Path, add.Size);
                        if (file.Position.CompareTo(from) >= 0)
                            yield return file;
                        break;
                    case RemoveFile remove when remove.DataChange:
                        throw new DeltaTableException(
                            $"{Delta.Name}: commit {version} removes data file {remove.Path}; the visits table must be append-only");
                }
            }
        }
    }

    /// <summary>Every visit in the table, in commit then row order, one file in memory at a time; a bad file or row throws, naming it.</summary>
    public async IAsyncEnumerable<Visit> ReadInOrderAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        foreach (var file in FilesFrom(SourceCursor.Start))
        {
            foreach (var visit in await ReadFileAsync(file, cancellationToken))
                yield return visit;
        }
    }

    /// <summary>Every visit in the table, in commit then row order; a bad file or row throws, naming it.</summary>
    public async Task<List<Visit>> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        var visits = new List<Visit>();
        foreach (var file in FilesFrom(SourceCursor.Start))
            visits.AddRange(await ReadFileAsync(file, cancellationToken));
        return visits;
    }

    /// <summary>Reads one visits data file, checking its schema and refusing nulls with the file and row named.</summary>
    public async Task<List<Visit>> ReadFileAsync(SourceFile file, CancellationToken cancellationToken = default) =>
        (await ReadFileAsync(file, BadRowsMode.Fail, 0, cancellationToken)).Visits;

    /// <summary>
    /// Reads one visits data file. With <see cref="BadRowsMode.Fail"/> a bad file or row throws, naming it; with
    /// <see cref="BadRowsMode.Quarantine"/> it is returned as quarantined (a whole unreadable file as one row) and
    /// the good visits are kept.
    /// </summary>
    public async Task<VisitsRead> ReadFileAsync(SourceFile file, BadRowsMode mode, long batch, CancellationToken cancellationToken = default)
    {
        var name = $"{Delta.Name}/{file.Path}";
        var quarantined = new List<QuarantinedVisit>();
        try
        {
            var visits = await ReadRowsAsync(file, name, mode == BadRowsMode.Fail ? null : (row, id, time, page, reason) =>
                quarantined.Add(new QuarantinedVisit(batch, file.Path, row, id, time, page, reason)), cancellationToken);
            return new VisitsRead(visits, quarantined);
        }
        catch (BadVisitsException e) when (mode == BadRowsMode.Quarantine)
        {
            return new VisitsRead([], [new QuarantinedVisit(batch, file.Path, null, null, null, null, e.Message)]);
        }
    }

    private delegate void BadRow(long row, long? userId, long? visitTimeMicros, string? page, string reason);

    private async Task<List<Visit>> ReadRowsAsync(SourceFile file, string name, BadRow? quarantine, CancellationToken cancellationToken)
    {
        var path = Delta.DataFilePath(file.Path);
        if (!File.Exists(path))
            throw new BadVisitsException($"{name}: data file is missing (committed in version {file.Version})");
        try
        {
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
            await using var reader = await ParquetReader.CreateAsync(stream, cancellationToken: cancellationToken);
            var fields = reader.Schema.DataFields;
            var userId = Column(fields, "user_id", name, t => t == typeof(long) || t == typeof(int), "long");
            var visitTime = Column(fields, "visit_time", name, t => t == typeof(DateTime), "timestamp");
            var page = Column(fields, "page", name, t => t == typeof(string) || t == typeof(ReadOnlyMemory<char>), "string");
            var visits = new List<Visit>();
            var pageNames = new SharedStrings();
            long rowBase = 0;
            for (var g = 0; g < reader.RowGroupCount; g++)
            {
                using var group = reader.OpenRowGroupReader(g);
                var n = (int)group.RowCount;
                using var ids = userId.ClrType == typeof(int) ? null : await RawColumn<long>.ReadAsync(group, userId, n, cancellationToken);
                using var intIds = ids is null ? await RawColumn<int>.ReadAsync(group, userId, n, cancellationToken) : null;
                using var times = await RawColumn<DateTime>.ReadAsync(group, visitTime, n, cancellationToken);
                using var pages = await RawColumn<ReadOnlyMemory<char>>.ReadAsync(group, page, n, cancellationToken);
                visits.EnsureCapacity(visits.Count + n);
                for (var i = 0; i < n; i++)
                {
                    long? id = ids is not null ? (ids.Next(out var wide) ? wide : null) : intIds!.Next(out var narrow) ? narrow : null;
                    DateTime? time = times.Next(out var t) ? t : null;
                    string? pageName = pages.Next(out var chars) ? pageNames.Share(chars.Span) : null;
                    if (id is { } user && time is { } at && pageName is not null)
                    {
                        visits.Add(new Visit(user, Timestamps.ToMicros(at), pageName));
                        continue;
                    }

                    var column = id is null ? "user_id" : time is null ? "visit_time" : "page";
                    var reason = $"{name}: row {rowBase + i + 1} has a null {column}";
                    if (quarantine is null)
                        throw new BadVisitsException(reason);
                    quarantine(rowBase + i + 1, id, time is { } late ? Timestamps.ToMicros(late) : null, pageName, $"null {column}");
                }

                rowBase += n;
            }

            // Checked after reading, so that a file that cannot be read or holds nulls is reported as such.
            if (ParquetFiles.SizeMismatch(name, stream.Length, file.Size, $"commit {file.Version}") is { } mismatch)
                throw new BadVisitsException(mismatch);
            return visits;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or ArgumentException or InvalidOperationException
            or IndexOutOfRangeException or OverflowException || e.GetType().Namespace?.StartsWith("Parquet", StringComparison.Ordinal) == true)
        {
            throw new BadVisitsException($"{name}: not a readable Parquet file ({e.Message.Split('\n')[0]})", e);
        }
    }

    /// <summary>
    /// One column of a row group as Parquet stores it: the values present, in row order, and for a nullable column each
    /// row's definition level (below the maximum: a null). Read so, a batch's millions of rows make no nullable value
    /// and no string per row (a page name is looked up from its characters); the buffers are rented, and returned on
    /// disposal.
    /// </summary>
    private sealed class RawColumn<T> : IDisposable
        where T : struct
    {
        private readonly T[] _values;
        private readonly int[]? _levels;
        private readonly int _maxLevel;
        private int _row;
        private int _next;

        private RawColumn(T[] values, int[]? levels, int maxLevel) => (_values, _levels, _maxLevel) = (values, levels, maxLevel);

        public static async Task<RawColumn<T>> ReadAsync(ParquetRowGroupReader group, DataField field, int rows, CancellationToken cancellationToken)
        {
            var values = ArrayPool<T>.Shared.Rent(rows);
            // A required column has no levels: every row has its value.
            var levels = field.MaxDefinitionLevel > 0 ? ArrayPool<int>.Shared.Rent(rows) : null;
            var column = new RawColumn<T>(values, levels, field.MaxDefinitionLevel);
            try
            {
                await group.ReadRawAsync(field, values.AsMemory(0, rows), levels?.AsMemory(0, rows), null, cancellationToken);
                return column;
            }
            catch
            {
                column.Dispose();
                throw;
            }
        }

        /// <summary>The next row's value; false for a null.</summary>
        public bool Next(out T value)
        {
            if (_levels is not null && _levels[_row++] < _maxLevel)
            {
                value = default;
                return false;
            }

            value = _values[_next++];
            return true;
        }

        public void Dispose()
        {
            // Page names point into buffers of their own, not into these: nothing read is lost with them.
            ArrayPool<T>.Shared.Return(_values, clearArray: RuntimeHelpers.IsReferenceOrContainsReferences<T>());
            if (_levels is not null)
                ArrayPool<int>.Shared.Return(_levels);
        }
    }

    private static DataField Column(IEnumerable<DataField> fields, string column, string file, Func<Type, bool> typeOk, string expected)
    {
        var field = fields.FirstOrDefault(f => f.Name == column) ?? throw new BadVisitsException($"{file}: has no column '{column}'");
        if (!typeOk(field.ClrType))
            throw new BadVisitsException($"{file}: column '{column}' has type {field.ClrType.Name}, expected {expected}");
        return field;
    }
}

public static class EngineInfo
{
    public const string Name = "Sessionization/1.0 Akka.NET";
}

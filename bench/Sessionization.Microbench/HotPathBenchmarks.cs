using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Running;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;

namespace Sessionization.Microbench;

/// <summary>The hot paths of one batch, each on its own: Parquet decode, grouping by user, session append, serialization.</summary>
[MemoryDiagnoser]
public class HotPathBenchmarks
{
    private const int Visits = 100_000;
    private readonly List<Visit> _visits = [];
    private string _directory = "";
    private VisitsTable _table = null!;
    private SourceFile _file = null!;
    private Dictionary<long, List<PageVisit>> _grouped = [];
    private UserSessionState _open = null!;
    private SessionExtended _event = null!;
    private byte[] _stateBytes = [];

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1);
        for (var i = 0; i < Visits; i++)
            _visits.Add(new Visit(random.Next(1, 20_000), 1_700_000_000_000_000L + i, $"page_{random.Next(1, 40)}.html"));
        _directory = Path.Combine(Path.GetTempPath(), "sessionization-microbench", Guid.NewGuid().ToString("N"));
        _table = VisitsTable.In(_directory);
        _table.AppendAsync(_visits, "microbench").GetAwaiter().GetResult();
        _file = _table.FilesFrom(SourceCursor.Start).Single();
        _grouped = BatchGrouping.ByUser(_visits);
        _open = UserSessionState.Empty(1).Apply(new SessionOpened(0, [.. Enumerable.Range(0, 20).Select(i => new PageVisit(i, $"page_{i}.html"))]));
        _event = new SessionExtended(3, [.. Enumerable.Range(0, 5).Select(i => new PageVisit(100 + i, $"page_{i}.html"))]);
        _stateBytes = UserStateCodec.Encode(_open);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        Directory.Delete(_directory, recursive: true);
    }

    [Benchmark(Description = "Parquet decode, 100K visits")]
    public async Task<int> ParquetDecode() => (await _table.ReadFileAsync(_file)).Count;

    [Benchmark(Description = "group 100K visits by user")]
    public int GroupByUser() => BatchGrouping.ByUser(_visits).Count;

    [Benchmark(Description = "decide + apply, every user of the batch")]
    public int SessionAppend()
    {
        var open = 0;
        foreach (var (user, visits) in _grouped)
        {
            var state = UserSessionState.Empty(user);
            var e = state.Decide(0, visits)!;
            state = state.Apply(e);
            var extended = state.Apply(state.Decide(1, visits)!);
            open += extended.Open!.VisitCount;
        }

        return open;
    }

    [Benchmark(Description = "session extend by 5 visits (20 open)")]
    public int Extend() => _open.Open!.Extend(_event.Visits).VisitCount;

    [Benchmark(Description = "encode a user state (20 open visits)")]
    public int Serialize() => UserStateCodec.Encode(_open).Length;

    [Benchmark(Description = "decode a user state (20 open visits)")]
    public object Deserialize() => UserStateCodec.Decode(_stateBytes);

    /// <summary><c>hosting [USERS] [BATCHES]</c> compares entity hosting (see <see cref="EntityHosting"/>); anything else goes to BenchmarkDotNet.</summary>
    public static async Task Main(string[] args)
    {
        if (args.FirstOrDefault() == "hosting")
        {
            await EntityHosting.RunAsync(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 200_000, args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 3);
            return;
        }

        BenchmarkSwitcher.FromAssembly(typeof(HotPathBenchmarks).Assembly).Run(args);
    }
}

using System.Globalization;
using CsCheck;
using DuckDB.NET.Data;
using Sessionization.Bench;
using Sessionization.Domain;

namespace Sessionization.Tests.Domain;

/// <summary>
/// The policy's direct computation against an outside one: the same event-time rule written in SQL and run by
/// DuckDB (the benchmark's peer uses it), on random visits with ties, gaps at the boundary and long chains.
/// </summary>
public sealed class EventTimeSqlAgreementTests : IDisposable
{
    private const long Minute = 60_000_000L;
    private readonly DuckDBConnection _duckDb = new("Data Source=:memory:");

    public EventTimeSqlAgreementTests() => _duckDb.Open();

    private static readonly Gen<(long Gap, long? Max, Visit[] Visits)> Cases =
        Gen.Select(
            Gen.OneOf(10L, 30L),
            Gen.OneOf<long?>(null, 30L, 45L),
            Gen.Select(Gen.Int[1, 3], Gen.Int[0, 300], Gen.Int[0, 9]).Select(v => new Visit(v.Item1, v.Item2 * Minute, $"p{v.Item3}")).Array[1, 60]);

    [Fact]
    public void DuckDb_finds_the_same_sessions_as_the_policy()
    {
        Cases.Sample(c =>
        {
            var policy = new EventTimeSessionPolicy(new EventTimeSettings(c.Gap * Minute, c.Max * Minute, 0, 0));

            var expected = SessionKeys.Of(policy.Direct(c.Visits));

            Assert.Equal(expected, SqlSessions(c.Visits, c.Gap * Minute, c.Max * Minute));
        }, iter: 150, threads: 1);
    }

    [Fact]
    public void Visits_exactly_a_gap_apart_split_in_sql_too()
    {
        Visit[] visits = [new(1, 0, "a"), new(1, 30 * Minute, "b"), new(1, (60 * Minute) - 1, "c")];

        Assert.Equal(
            [(1L, "a", 0L, 0L, 1L), (1L, "b -> c", 30 * Minute, (60 * Minute) - 1, 2L)],
            SqlSessions(visits, 30 * Minute, null));
    }

    private List<(long, string, long, long, long)> SqlSessions(Visit[] visits, long gap, long? max)
    {
        using (var create = _duckDb.CreateCommand())
        {
            var rows = string.Join(", ", visits.Select((v, i) => string.Create(CultureInfo.InvariantCulture, $"({v.UserId}, {v.VisitTimeMicros}, {i}, '{v.Page}')")));
            create.CommandText = $"CREATE OR REPLACE TABLE visits AS SELECT * FROM (VALUES {rows}) v(user_id, visit_time_us, seq, page)";
            create.ExecuteNonQuery();
        }

        using var query = _duckDb.CreateCommand();
        query.CommandText = EventTimeSql.Sessions("visits", gap, max);
        using var reader = query.ExecuteReader();
        var sessions = new List<(long, string, long, long, long)>();
        while (reader.Read())
            sessions.Add((Convert.ToInt64(reader.GetValue(0), CultureInfo.InvariantCulture), reader.GetString(1), Convert.ToInt64(reader.GetValue(2), CultureInfo.InvariantCulture), Convert.ToInt64(reader.GetValue(3), CultureInfo.InvariantCulture), Convert.ToInt64(reader.GetValue(4), CultureInfo.InvariantCulture)));
        return [.. sessions.Order()];
    }

    public void Dispose() => _duckDb.Dispose();
}

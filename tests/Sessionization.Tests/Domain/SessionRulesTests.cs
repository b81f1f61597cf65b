using Sessionization.Domain;

namespace Sessionization.Tests.Domain;

public class SessionRulesTests
{
    [Theory]
    [InlineData("30m", 30 * 60_000_000L)]
    [InlineData("0s", 0L)]
    [InlineData("1500ms", 1_500_000L)]
    [InlineData("24h", 24 * 3_600_000_000L)]
    [InlineData("2d", 2 * 86_400_000_000L)]
    [InlineData(" 5us ", 5L)]
    public void Durations_read_a_whole_number_and_a_unit(string text, long micros) => Assert.Equal(micros, Durations.TryParseMicros(text));

    [Theory]
    [InlineData("30")]
    [InlineData("-5m")]
    [InlineData("1.5h")]
    [InlineData("m")]
    [InlineData("99999999999999999d")]
    public void Anything_else_is_not_a_duration(string text) => Assert.Null(Durations.TryParseMicros(text));

    [Theory]
    [InlineData(30 * 60_000_000L, "30m")]
    [InlineData(90_000_000L, "90s")]
    [InlineData(3_600_000_000L, "1h")]
    [InlineData(1_500_000L, "1500ms")]
    [InlineData(0L, "0s")]
    public void Durations_are_written_in_their_shortest_exact_form(long micros, string text)
    {
        Assert.Equal(text, Durations.Format(micros));
        Assert.Equal(micros, Durations.TryParseMicros(text));
    }

    [Fact]
    public void The_same_settings_written_differently_are_the_same_rules()
    {
        var a = new SessionRules(SessionMode.EventTime, new EventTimeSettings(Durations.TryParseMicros("60m")!.Value, null, 0, 0));
        var b = new SessionRules(SessionMode.EventTime, new EventTimeSettings(Durations.TryParseMicros("1h")!.Value, null, 0, 0), IdleClose: TimeSpan.FromMinutes(5));

        // Idle close decides when a worker forms a batch, not what sessions are: it is not part of the rules.
        Assert.Equal(a.Describe(), b.Describe());
        Assert.Null(b.Mismatch(a.Describe()));
        Assert.NotNull(SessionRules.Batches.Mismatch(a.Describe()));
        Assert.Null(a.Mismatch(null));
    }

    [Fact]
    public void The_rules_read_back_as_the_flags_that_give_them()
    {
        var rules = new SessionRules(SessionMode.EventTime, new EventTimeSettings(Durations.MicrosPerMinute * 30, Durations.MicrosPerMinute * 60 * 24, 0, 90 * Durations.MicrosPerSecond));
        Assert.Equal("--mode event-time --gap 30m --max-duration 1d --watermark-delay 0s --allowed-lateness 90s", rules.Flags());
        Assert.Equal("--mode batches", SessionRules.Batches.Flags());
    }

    [Fact]
    public void Open_sessions_are_a_users_pending_rows_of_the_last_batch_that_wrote_any_row_of_that_user()
    {
        static SessionRecord Row(long user, long batch, long start, string pages = "p") => new(user, pages, batch, start, start, 1);
        SessionRecord[] pending =
        [
            Row(1, 0, 10), Row(1, 0, 90),   // user 1: both changed in batch 0
            Row(1, 2, 90, "p -> q"),        // batch 2 changed the second; the first is still open, so it is written again
            Row(1, 2, 10),
            Row(2, 1, 50),                  // user 2: closed in batch 3
            Row(3, 4, 70),                  // user 3: batch 4 corrected its written session and opened another
        ];
        SessionRecord[] written = [Row(2, 3, 50), Row(3, 2, 5), Row(3, 4, 5, "a -> b")];

        var open = OpenSessions.From(pending, written);

        Assert.Equal(["1@10 b2", "1@90 b2", "3@70 b4"], open.Select(r => $"{r.UserId}@{r.StartTimeMicros} b{r.BatchNumber}"));
    }

    [Fact]
    public async Task Open_sessions_read_as_streams_in_any_pending_order_match_the_definition()
    {
        var random = new Random(7);
        var pending = Enumerable.Range(0, 2000).Select(_ => new SessionRecord(random.Next(50), "p", random.Next(20), random.Next(1000), 0, 1)).ToList();
        var written = Enumerable.Range(0, 500).Select(_ => new SessionRecord(random.Next(50), "p", random.Next(20), random.Next(1000), 0, 1)).ToList();
        // The definition: a user's pending rows of the last batch that wrote any row of that user.
        var last = pending.Concat(written).GroupBy(r => r.UserId).ToDictionary(g => g.Key, g => g.Max(r => r.BatchNumber));
        var expected = pending.Where(r => r.BatchNumber == last[r.UserId]).OrderBy(r => r.UserId).ThenBy(r => r.StartTimeMicros).ToList();

        var streamed = await OpenSessions.FromAsync(Stream(pending.OrderBy(_ => random.Next())), Stream(written));

        Assert.NotEmpty(expected);
        Assert.Equal(expected.Select(r => r.ToString()).Order(), streamed.Select(r => r.ToString()).Order());
        Assert.Equal(expected.Select(r => (r.UserId, r.StartTimeMicros)), streamed.Select(r => (r.UserId, r.StartTimeMicros)));
    }

    private static async IAsyncEnumerable<SessionRecord> Stream(IEnumerable<SessionRecord> rows)
    {
        foreach (var row in rows)
        {
            await Task.Yield();
            yield return row;
        }
    }
}

using CsCheck;
using Sessionization.Domain;
using Sessionization.Persistence.UserState;

namespace Sessionization.Tests.Actors;

/// <summary>The event-time state store on SQLite: current states by user and by deadline, replays, rewinds and pruning.</summary>
public sealed class EventTimeStateStoreTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly EventTimeStateStore _store;

    public EventTimeStateStoreTests() => _store = EventTimeStateStore.Sqlite(_temp.Combine("state", "event-time.db"), TimeSpan.FromSeconds(5));

    private static EventTimeStateRow Row(long user, long batch, long? deadline, params string[] pages) =>
        new(user, deadline, UserStateCodec.Encode(new EventTimeUserState(user, batch, pages.Length == 0 ? [] : [new EventTimeSession([.. pages.Select((p, i) => new PageVisit(i, p))], null)])));

    private static string Pages(EventTimeStateRow row) => string.Join(",", row.Decode().Sessions.SelectMany(s => s.Visits).Select(v => v.Page));

    /// <summary>Saves <paramref name="rows"/> for <paramref name="batch"/> as a batch does: each with the row the store holds for its user.</summary>
    private Task SaveAsync(long batch, params EventTimeStateRow[] rows) => SaveAsync(batch, Watermark.None, inPlace: false, rows);

    /// <summary>
    /// Saves as a batch that read the users due at <paramref name="dueAt"/> (all among <paramref name="rows"/>), its rows
    /// in the log or, <paramref name="inPlace"/>, in the users table.
    /// </summary>
    private async Task SaveAsync(long batch, long dueAt, bool inPlace, params EventTimeStateRow[] rows)
    {
        await _store.RewindAsync(batch);
        var before = await _store.LoadUsersAsync([.. rows.Select(r => r.UserId)]);
        await _store.SaveBatchAsync(
            batch, Changes(rows.Select(r => new EventTimeStateChange(r, before.TryGetValue(r.UserId, out var had) ? had : null))), expectedBytes: inPlace ? long.MaxValue : 0, dueAt: dueAt);
    }

    /// <summary>The changes as a batch hands them to the store: one at a time, while it is still stepping users.</summary>
    private static async IAsyncEnumerable<EventTimeStateChange> Changes(IEnumerable<EventTimeStateChange> changes)
    {
        foreach (var change in changes)
        {
            await Task.Yield();
            yield return change;
        }
    }

    [Fact]
    public void State_rows_are_kept_in_id_order_once_each_and_found_by_id()
    {
        Gen.Long[-50, 50].Array[0, 40].Sample(ids =>
        {
            var rows = StateRows.Of([.. ids.Select(id => Row(id, 0, id + 100, $"p{id}"))]);
            var expected = ids.Distinct().Order().ToArray();
            Assert.Equal(expected, Enumerable.Range(0, rows.Count).Select(i => rows[i].UserId));
            for (var id = -51L; id <= 51; id++)
            {
                Assert.Equal(expected.Contains(id), rows.TryGetValue(id, out var row));
                if (expected.Contains(id))
                    Assert.Equal((id, id + 100, $"p{id}"), (row.UserId, row.Deadline, Pages(row)));
            }
        });
    }

    [Fact]
    public void A_deadline_index_after_a_batch_has_the_batchs_rows_over_its_own_and_none_for_a_user_that_keeps_nothing()
    {
        var entry = Gen.Select(Gen.Long[0, 30], Gen.Long[100, 200]);
        var stepped = Gen.Select(Gen.Long[0, 30], Gen.Long[100, 200].Nullable());
        Gen.Select(entry.Array[0, 20], stepped.Array[0, 20]).Sample((entries, steps) =>
        {
            var held = entries.DistinctBy(e => e.Item1).ToArray();
            var index = DeadlineIndex.Of([.. held.Select(e => e.Item1)], [.. held.Select(e => e.Item2)]);
            var rows = StateRows.Of([.. steps.DistinctBy(s => s.Item1).Select(s => new EventTimeStateRow(s.Item1, s.Item2, default))]);

            var after = index.After(rows);

            var expected = held.ToDictionary(e => e.Item1, e => e.Item2);
            for (var i = 0; i < rows.Count; i++)
            {
                if (rows[i].Deadline is { } deadline)
                    expected[rows[i].UserId] = deadline;
                else
                    expected.Remove(rows[i].UserId);
            }

            Assert.Equal(
                expected.OrderBy(e => e.Key).Select(e => (e.Key, e.Value)),
                Enumerable.Range(0, after.Count).Select(i => (after.UserAt(i), after.DeadlineAt(i))));
        });
    }

    [Fact]
    public async Task The_deadlines_are_every_current_row_in_the_table_or_the_log_and_follow_a_rewind()
    {
        await SaveAsync(0, Watermark.None, inPlace: true, Row(3, 0, 300, "c"), Row(1, 0, 100, "a"), Row(2, 0, 200, "b"));
        // In the log: user 1 moves on, user 2 keeps nothing (no row), user 4 is new.
        await SaveAsync(1, Row(1, 1, 150, "a", "d"), Row(2, 1, null), Row(4, 1, 400, "e"));

        var index = await _store.LoadDeadlinesAsync();

        Assert.Equal([(1L, 150L), (3L, 300L), (4L, 400L)], Enumerable.Range(0, index.Count).Select(i => (index.UserAt(i), index.DeadlineAt(i))));

        await _store.ApplyLogAsync();
        await _store.RewindAsync(1);
        var rewound = await _store.LoadDeadlinesAsync();

        Assert.Equal([(1L, 100L), (2L, 200L), (3L, 300L)], Enumerable.Range(0, rewound.Count).Select(i => (rewound.UserAt(i), rewound.DeadlineAt(i))));
    }

    [Fact]
    public async Task A_later_batch_supersedes_a_users_state_and_only_current_states_are_read()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"));
        await SaveAsync(1, Row(1, 1, 300, "a", "c"));

        var states = await _store.LoadUsersAsync([1, 2, 3]);

        Assert.Equal(["1:a,c", "2:b"], states.OrderBy(s => s.Key).Select(s => $"{s.Key}:{Pages(s.Value)}"));
        Assert.Equal(1, states[1].Decode().LastAppliedBatch);
    }

    [Fact]
    public async Task Due_states_are_those_whose_deadline_the_watermark_reached_among_current_ones()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"), Row(3, 0, 150, "c"));
        await SaveAsync(1, Row(3, 1, null));

        Assert.Equal([1L], (await _store.LoadDueAsync(150)).Keys.Order());
        Assert.Equal([1L, 2L], (await _store.LoadDueAsync(200)).Keys.Order());
    }

    [Fact]
    public async Task A_user_is_due_at_its_rows_deadline_only_and_a_rewind_brings_back_the_due_users_a_batch_took()
    {
        await SaveAsync(0, Watermark.None, inPlace: true, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"));
        // User 1 was due at 150, and moves on to 300; user 2 moves on to 400 before its deadline, leaving its entry at 200.
        await SaveAsync(1, 150, inPlace: true, Row(1, 1, 300, "a", "c"));
        await SaveAsync(2, 160, inPlace: true, Row(2, 2, 400, "b", "d"));

        Assert.Empty(await _store.LoadDueAsync(299));
        Assert.Equal([1L], (await _store.LoadDueAsync(300)).Keys);
        Assert.Equal([1L, 2L], (await _store.LoadDueAsync(400)).Keys.Order());
        var candidates = await _store.LoadDueIdsAsync(299);
        var rows = await _store.LoadUsersAsync(candidates);
        Assert.DoesNotContain(rows.Values, r => r.Deadline <= 299);

        await _store.RewindAsync(1);

        Assert.Equal([1L], (await _store.LoadDueAsync(150)).Keys);
        Assert.Equal([1L, 2L], (await _store.LoadDueIdsAsync(200)).Distinct().Order());
    }

    [Fact]
    public async Task A_store_with_an_index_on_the_deadline_gets_a_due_entry_for_each_row_and_loses_the_index()
    {
        var path = _temp.Combine("indexed", "event-time.db");
        CreateFile(path, $"""
            PRAGMA journal_mode=WAL;
            CREATE TABLE event_time_users (user_id INTEGER PRIMARY KEY, deadline BIGINT NOT NULL, state BLOB NOT NULL);
            CREATE INDEX event_time_users_due ON event_time_users (deadline);
            INSERT INTO event_time_users VALUES
                (1, 100, X'{Convert.ToHexString(Row(1, 0, 100, "a").State.Span)}'), (2, 200, X'{Convert.ToHexString(Row(2, 0, 200, "b").State.Span)}');
            """);

        var store = EventTimeStateStore.Sqlite(path, TimeSpan.FromSeconds(5));
        var reopened = EventTimeStateStore.Sqlite(path, TimeSpan.FromSeconds(5));

        Assert.Equal([1L], (await store.LoadDueAsync(150)).Keys);
        Assert.Equal([1L, 2L], (await reopened.LoadDueAsync(200)).Keys.Order());
        Assert.Equal(0L, Scalar(path, "SELECT count(*) FROM sqlite_master WHERE name = 'event_time_users_due'"));
        Assert.Equal(2L, Scalar(path, "SELECT count(*) FROM event_time_due"));
    }

    [Fact]
    public async Task Saving_a_batch_again_gives_the_same_states_as_saving_it_once()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"));
        await SaveAsync(1, Row(1, 1, 300, "a", "c"));

        await SaveAsync(1, Row(1, 1, 300, "a", "c"));

        Assert.Equal("a,c", Pages((await _store.LoadUsersAsync([1]))[1]));
        Assert.Equal([1L], (await _store.LoadDueAsync(300)).Keys);
        Assert.Empty(await _store.LoadDueAsync(299));
    }

    [Fact]
    public async Task A_rewind_brings_back_the_states_as_they_stood_before_the_batch()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"));
        await SaveAsync(1, Row(1, 1, 300, "a", "c"), Row(4, 1, 50, "d"));

        Assert.Equal(2, await _store.RewindAsync(1));

        var states = await _store.LoadUsersAsync([1, 2, 4]);
        Assert.Equal(["1:a", "2:b"], states.OrderBy(s => s.Key).Select(s => $"{s.Key}:{Pages(s.Value)}"));
        Assert.Equal([1L], (await _store.LoadDueAsync(100)).Keys);
    }

    [Fact]
    public async Task Pruning_keeps_what_a_rewind_to_a_retained_checkpoint_needs()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"));
        await SaveAsync(1, Row(1, 1, 300, "a", "c"), Row(2, 1, null));
        await SaveAsync(2, Row(1, 2, 400, "a", "c", "e"));

        await _store.PruneBeforeAsync(2);
        await _store.RewindAsync(2);

        var states = await _store.LoadUsersAsync([1, 2]);
        Assert.Equal(["1:a,c"], states.Select(s => $"{s.Key}:{Pages(s.Value)}"));
    }

    [Fact]
    public async Task Many_users_are_read_in_one_call()
    {
        await SaveAsync(0, [.. Enumerable.Range(1, 1_234).Select(u => Row(u, 0, u, "p"))]);

        Assert.Equal(1_234, (await _store.LoadUsersAsync([.. Enumerable.Range(1, 2_000).Select(u => (long)u)])).Count);
        Assert.Equal(1_000, (await _store.LoadDueAsync(1_000)).Count);
    }

    [Fact]
    public async Task Changes_that_end_in_an_error_save_nothing()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"));

        async IAsyncEnumerable<EventTimeStateChange> Failing()
        {
            await Task.Yield();
            yield return new EventTimeStateChange(Row(2, 1, 200, "b"), null);
            throw new InvalidOperationException("stepping failed");
        }

        await Assert.ThrowsAsync<InvalidOperationException>(() => _store.SaveBatchAsync(1, Failing()));
        Assert.Equal([1L], (await _store.LoadUsersAsync([1, 2])).Keys);
        Assert.Equal(0, await _store.RewindAsync(1));
    }

    [Fact]
    public async Task A_stored_state_the_store_does_not_have_is_refused()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 100, "b"));
        var claimed = Row(2, 0, 100, "x");

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => _store.SaveBatchAsync(1, Changes([new EventTimeStateChange(Row(2, 1, 200, "b", "c"), claimed)])));
        var unclaimed = await Assert.ThrowsAsync<InvalidOperationException>(() => _store.SaveBatchAsync(1, Changes([new EventTimeStateChange(Row(2, 1, 200, "b", "c"), null)])));

        // Written in place, the rows themselves refuse a claim: one for a user without a row, or none for one with a row.
        var inPlace = await Assert.ThrowsAsync<InvalidOperationException>(() => _store.SaveBatchAsync(1, Changes([new EventTimeStateChange(Row(3, 1, 200, "c"), Row(3, 0, 100, "x"))]), long.MaxValue));
        var inPlaceUnclaimed = await Assert.ThrowsAnyAsync<Exception>(() => _store.SaveBatchAsync(1, Changes([new EventTimeStateChange(Row(1, 1, 200, "a", "c"), null)]), long.MaxValue));

        Assert.Contains("user 2", refused.Message);
        Assert.Contains("user 2", unclaimed.Message);
        Assert.Contains("user 3", inPlace.Message);
        Assert.Contains("UNIQUE", inPlaceUnclaimed.Message);
        Assert.Equal("b", Pages((await _store.LoadUsersAsync([2]))[2]));
        Assert.Empty(await _store.LoadUsersAsync([3]));
        Assert.Equal("a", Pages((await _store.LoadUsersAsync([1]))[1]));
    }

    [Fact]
    public async Task The_log_is_read_by_a_new_store_and_applying_it_changes_no_state()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"));
        await SaveAsync(1, Row(1, 1, 300, "a", "c"), Row(2, 1, null), Row(3, 1, 50, "d"));

        var reopened = EventTimeStateStore.Sqlite(_temp.Combine("state", "event-time.db"), TimeSpan.FromSeconds(5));
        string Seen(Dictionary<long, EventTimeStateRow> rows) => string.Join(" ", rows.OrderBy(r => r.Key).Select(r => $"{r.Key}:{Pages(r.Value)}@{r.Value.Deadline}"));
        var expected = "1:a,c@300 3:d@50";
        Assert.Equal(expected, Seen(await reopened.LoadUsersAsync([1, 2, 3])));
        await reopened.ApplyLogAsync();

        Assert.Equal(expected, Seen(await reopened.LoadUsersAsync([1, 2, 3])));
        Assert.Equal(expected, Seen(await _store.LoadUsersAsync([1, 2, 3])));
        Assert.Equal([3L], (await _store.LoadDueAsync(299)).Keys);
        Assert.Equal([1L, 3L], (await reopened.LoadDueIdsAsync(300)).Order());
    }

    [Fact]
    public async Task A_rewind_reaches_back_across_an_applied_log()
    {
        await SaveAsync(0, Row(1, 0, 100, "a"), Row(2, 0, 200, "b"));
        await SaveAsync(1, Row(1, 1, 300, "a", "c"), Row(2, 1, null));
        await _store.ApplyLogAsync();
        await SaveAsync(2, Row(1, 2, 400, "a", "c", "e"), Row(4, 2, 10, "f"));

        Assert.Equal(3, await _store.RewindAsync(1));

        var states = await _store.LoadUsersAsync([1, 2, 4]);
        Assert.Equal(["1:a", "2:b"], states.OrderBy(s => s.Key).Select(s => $"{s.Key}:{Pages(s.Value)}"));
        Assert.Equal([1L, 2L], (await _store.LoadDueAsync(200)).Keys.Order());
    }

    /// <summary>
    /// Any sequence of saves, rewinds to a retained batch, prunes, log applications and second stores on the same file
    /// (another process, or this one after a restart) leaves every store reading the states a plain model holds.
    /// </summary>
    [Fact]
    public async Task Saves_rewinds_applications_and_other_stores_agree_with_a_model()
    {
        var operations = Gen.Select(Gen.Int[0, 7], Gen.Int[0, 59].Array[0, 6]).Array[1, 25];
        var sample = 0;
        await operations.SampleAsync(async ops =>
        {
            var path = _temp.Combine($"model-{Interlocked.Increment(ref sample)}", "event-time.db");
            EventTimeStateStore[] stores = [EventTimeStateStore.Sqlite(path, TimeSpan.FromSeconds(5)), EventTimeStateStore.Sqlite(path, TimeSpan.FromSeconds(5))];
            var current = 0;
            // before[b]: every user's state before batch b, as user -> (deadline, page).
            var before = new List<Dictionary<long, (long Deadline, string Page)>> { new() };
            long prunedBefore = 0;
            foreach (var (kind, values) in ops)
            {
                var store = stores[current];
                var batch = before.Count - 1;
                switch (kind)
                {
                    case <= 2:
                        var state = new Dictionary<long, (long Deadline, string)>(before[batch]);
                        var stored = await store.LoadUsersAsync([1, 2, 3, 4, 5, 6]);
                        var changes = new List<EventTimeStateChange>();
                        // One in two reads the users due at a watermark, as a batch does: every one of them is among its
                        // changes, and each user it keeps has a deadline past that watermark.
                        long? dueAt = values.Length > 0 && values[0] % 2 == 0 ? values[0] % 30 : null;
                        var byUser = values.DistinctBy(v => v % 6).ToDictionary(v => v % 6 + 1L);
                        foreach (var (user, (deadline, _)) in state)
                        {
                            if (deadline <= dueAt)
                                byUser.TryAdd(user, (int)user + 5);
                        }

                        foreach (var (user, value) in byUser)
                        {
                            var keeps = value / 6 % 3 != 0;
                            var deadline = dueAt is { } w ? w + 1 + value : value;
                            if (keeps)
                                state[user] = (deadline, $"p{value}");
                            else
                                state.Remove(user);
                            changes.Add(new EventTimeStateChange(Row(user, batch, keeps ? deadline : null, keeps ? [$"p{value}"] : []), stored.TryGetValue(user, out var had) ? had : null));
                        }

                        // One in three writes its rows in place, as a batch too large for the log does.
                        await store.SaveBatchAsync(batch, Changes(changes), expectedBytes: kind == 2 ? long.MaxValue : 0, dueAt: dueAt ?? Watermark.None);
                        before.Add(state);
                        break;
                    case 3:
                        var to = prunedBefore + (values.FirstOrDefault() % (batch - prunedBefore + 1));
                        await store.RewindAsync(to);
                        before.RemoveRange((int)to + 1, before.Count - (int)to - 1);
                        break;
                    case 4:
                        await store.ApplyLogAsync();
                        break;
                    case 5:
                        prunedBefore = Math.Max(prunedBefore, values.FirstOrDefault() % (batch + 1));
                        await store.PruneBeforeAsync(prunedBefore);
                        break;
                    case 6:
                        current = 1 - current;
                        break;
                    default:
                        stores[current] = EventTimeStateStore.Sqlite(path, TimeSpan.FromSeconds(5));
                        break;
                }

                var expected = before[^1];
                foreach (var reader in stores)
                {
                    var rows = await reader.LoadUsersAsync([1, 2, 3, 4, 5, 6]);
                    Assert.Equal(
                        expected.OrderBy(e => e.Key).Select(e => $"{e.Key}:{e.Value.Page}@{e.Value.Deadline}"),
                        rows.OrderBy(r => r.Key).Select(r => $"{r.Key}:{Pages(r.Value)}@{r.Value.Deadline}"));
                    foreach (var watermark in new long[] { 20, 40, 60, 90 })
                    {
                        var due = expected.Where(e => e.Value.Deadline <= watermark).Select(e => e.Key).Order();
                        Assert.Equal(due, (await reader.LoadDueAsync(watermark)).Keys.Order());
                        // The ids may name users whose deadline moved on: their rows tell them apart.
                        Assert.Equal(due, (await reader.LoadDueIdsAsync(watermark)).Distinct().Where(u => rows.TryGetValue(u, out var row) && row.Deadline <= watermark).Order());
                    }
                }
            }
        }, iter: 60, threads: 1);
    }

    [Fact]
    public void A_store_of_the_earlier_layout_is_refused_by_name()
    {
        var path = _temp.Combine("old", "event-time.db");
        CreateFile(path, "CREATE TABLE event_time_states (user_id BIGINT, batch BIGINT, deadline BIGINT, superseded_in BIGINT, state BLOB)");

        var refused = Assert.ThrowsAny<Exception>(() => EventTimeStateStore.Sqlite(path, TimeSpan.FromSeconds(5)));

        Assert.Contains("earlier layout", refused.Message);
        Assert.Contains("--from-batch 0", refused.Message);
    }

    [Fact]
    public async Task A_new_file_has_16_KB_pages_and_one_created_with_4_KB_pages_keeps_them_and_its_states()
    {
        Assert.Equal(16384L, PageSize(_temp.Combine("state", "event-time.db")));

        var path = _temp.Combine("earlier", "event-time.db");
        CreateFile(path, "PRAGMA page_size=4096; PRAGMA journal_mode=WAL;");

        var earlier = EventTimeStateStore.Sqlite(path, TimeSpan.FromSeconds(5));
        await earlier.SaveBatchAsync(0, Changes([new EventTimeStateChange(Row(1, 0, 100, "a"), null)]));
        var reopened = EventTimeStateStore.Sqlite(path, TimeSpan.FromSeconds(5));

        Assert.Equal(4096L, PageSize(path));
        Assert.Equal("a", Pages((await reopened.LoadUsersAsync([1]))[1]));
    }

    /// <summary>An SQLite file made outside the store, as an earlier version left it.</summary>
    private static void CreateFile(string path, string sql)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static long PageSize(string path) => Scalar(path, "PRAGMA page_size");

    private static long Scalar(string path, string sql)
    {
        using var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={path};Pooling=False;Mode=ReadOnly");
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return (long)command.ExecuteScalar()!;
    }

    public void Dispose() => _temp.Dispose();
}

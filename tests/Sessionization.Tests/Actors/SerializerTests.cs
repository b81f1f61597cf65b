using Akka.Serialization;
using Akka.TestKit.Xunit2;
using Sessionization.Actors.Serialization;
using Sessionization.Domain;
using Sessionization.Persistence.UserState;

namespace Sessionization.Tests.Actors;

public sealed class SerializerTests() : TestKit(ActorTestConfig.InMemory)
{
    public static TheoryData<IPersistedRecord> Records()
    {
        var session = new Session(long.MaxValue, 3, [new PageVisit(-1, "a"), new PageVisit(5, "页面 🙂")]);
        var plan = new BatchPlan(7, new SourceCursor(3, 1), new SourceCursor(5, 2), [new SourceFile(3, 1, "part-1.parquet", 10), new SourceFile(5, 1, "p%20q.parquet", 20)]);
        return
        [
            new BatchPlanned(plan),
            new BatchPlanned(plan with { EndOfInput = true, WatermarkAtLeast = -5 }, "event-time gap=30m max-duration=off watermark-delay=0s allowed-lateness=0s"),
            new BatchCommitted(7, new SourceCursor(5, 2), 100, 20, 3, 1_770_000_000_000_000, long.MinValue),
            new CoordinatorState(8, new SourceCursor(5, 2), plan with { WatermarkAtLeast = 9 }, null, [
                new Checkpoint(7, new SourceCursor(3, 1), new SourceCursor(5, 2), new CommittedBatch(7, 5, 100, 20, 3), 16, 40, 30)], 90, 80, "batches"),
            new BatchCommitted(7, new SourceCursor(5, 2), 100, 20, 3),
            new BatchCommitted(7, new SourceCursor(5, 2), 100, 20, 3, 1_770_000_000_000_000),
            new CoordinatorState(8, new SourceCursor(5, 2), plan, null, [new Checkpoint(7, new SourceCursor(3, 1), new SourceCursor(5, 2), new CommittedBatch(7, 5, 100, 20, 3), 16)]),
            new CoordinatorState(9, new SourceCursor(5, 2), null, null, [
                new Checkpoint(7, new SourceCursor(3, 1), new SourceCursor(5, 2), new CommittedBatch(7, 5, 100, 20, 3), 16, 40),
                new Checkpoint(8, new SourceCursor(5, 2), new SourceCursor(5, 2), new CommittedBatch(8, 5, 0, 0, 20), 18, 90)], 90),
            new CoordinatorState(3, new SourceCursor(1, 0), null, 3, []),
            new CoordinatorState(9, new SourceCursor(5, 2), null, null, [
                new Checkpoint(8, new SourceCursor(5, 2), new SourceCursor(5, 2), new CommittedBatch(8, 5, 0, 0, 20), 18, 90) { OpenBefore = 35 }], 90) { Open = 20 },
            CoordinatorState.Initial,
            new RewindStarted(3),
            new RewindCompleted(3),
        ];
    }

    [Theory]
    [MemberData(nameof(Records))]
    public void Every_persisted_record_round_trips_through_the_bound_serializer(IPersistedRecord record)
    {
        var serializer = Sys.Serialization.FindSerializerFor(record);
        Assert.IsType<SessionizationSerializer>(serializer);

        var manifest = Serialization.ManifestFor(serializer, record);
        var back = Sys.Serialization.Deserialize(serializer.ToBinary(record), serializer.Identifier, manifest);

        Assert.Equal(record, back);
    }

    [Fact]
    public void Records_written_before_a_field_was_kept_read_as_not_recorded()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(CoordinatorState));
        var plan = new BatchPlan(8, new SourceCursor(5, 2), new SourceCursor(6, 0), [new SourceFile(5, 2, "part-1.parquet", 10)]);
        var committed = new BatchCommitted(7, new SourceCursor(5, 2), 100, 20, 3);
        var state = new CoordinatorState(8, new SourceCursor(5, 2), plan, null, [new Checkpoint(7, new SourceCursor(3, 1), new SourceCursor(5, 2), new CommittedBatch(7, 5, 100, 20, 3), 16)]);
        var planned = new BatchPlanned(plan);

        // Each later format appended its fields: the first ended before the latest visit (one flag for the event, one
        // for the state and one per checkpoint); the second before the watermark, the rules and the plan's extras;
        // the third before the open sessions (one flag for the state and one per checkpoint).
        var first = (Committed: serializer.ToBinary(committed)[..^2], State: serializer.ToBinary(state)[..^9]);
        var second = (Committed: serializer.ToBinary(committed)[..^1], State: serializer.ToBinary(state)[..^7]);
        var third = (Committed: serializer.ToBinary(committed), State: serializer.ToBinary(state)[..^2]);

        foreach (var (oldCommitted, oldState) in new[] { first, second, third })
        {
            Assert.Equal(committed, serializer.FromBinary(oldCommitted, serializer.Manifest(committed)));
            Assert.Equal(state, serializer.FromBinary(oldState, serializer.Manifest(state)));
        }

        // A plan's extras (a flag and an optional watermark) and the rules (a flag) came at once.
        Assert.Equal(planned, serializer.FromBinary(serializer.ToBinary(planned)[..^3], serializer.Manifest(planned)));
    }

    public static TheoryData<UserSessionState> States()
    {
        var session = new Session(long.MaxValue, 3, [new PageVisit(-1, "a"), new PageVisit(5, "页面 🙂")]);
        return [UserSessionState.Empty(4), new UserSessionState(long.MinValue, 3, session, null), new UserSessionState(1, 4, null, session)];
    }

    [Theory]
    [MemberData(nameof(States))]
    public void Every_user_session_state_round_trips_through_the_user_state_codec(UserSessionState state) =>
        Assert.Equal(state, UserStateCodec.Decode(UserStateCodec.Encode(state)));

    [Fact]
    public void Event_time_states_round_trip_through_the_user_state_codec()
    {
        EventTimeUserState[] states =
        [
            EventTimeUserState.Empty(5),
            new(7, 3, [
                new EventTimeSession([new PageVisit(10, "a"), new PageVisit(10, "ä -> b")], 2),
                new EventTimeSession([new PageVisit(4_000_000_000, "c")], null)]),
        ];

        foreach (var state in states)
        {
            var decoded = UserStateCodec.DecodeEventTime(UserStateCodec.Encode(state));
            Assert.Equal((state.UserId, state.LastAppliedBatch), (decoded.UserId, decoded.LastAppliedBatch));
            Assert.Equal(state.Sessions.ToArray(), decoded.Sessions.ToArray());
        }
    }

    [Fact]
    public void A_truncated_or_padded_event_time_state_is_refused()
    {
        var bytes = UserStateCodec.Encode(new EventTimeUserState(7, 3, [new EventTimeSession([new PageVisit(10, "a")], null)]));

        Assert.ThrowsAny<Exception>(() => UserStateCodec.DecodeEventTime(bytes[..^1]));
        Assert.Throws<InvalidDataException>(() => UserStateCodec.DecodeEventTime([.. bytes, 0]));
    }
}

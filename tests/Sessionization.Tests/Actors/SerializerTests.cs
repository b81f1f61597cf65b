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
            new BatchCommitted(7, new SourceCursor(5, 2), 100, 20, 3),
            new BatchCommitted(7, new SourceCursor(5, 2), 100, 20, 3, 1_770_000_000_000_000),
            new CoordinatorState(8, new SourceCursor(5, 2), plan, null, [new Checkpoint(7, new SourceCursor(3, 1), new SourceCursor(5, 2), new CommittedBatch(7, 5, 100, 20, 3), 16)]),
            new CoordinatorState(9, new SourceCursor(5, 2), null, null, [
                new Checkpoint(7, new SourceCursor(3, 1), new SourceCursor(5, 2), new CommittedBatch(7, 5, 100, 20, 3), 16, 40),
                new Checkpoint(8, new SourceCursor(5, 2), new SourceCursor(5, 2), new CommittedBatch(8, 5, 0, 0, 20), 18, 90)], 90),
            new CoordinatorState(3, new SourceCursor(1, 0), null, 3, []),
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
    public void Records_written_before_the_latest_visit_time_was_kept_read_as_not_recorded()
    {
        var serializer = (SerializerWithStringManifest)Sys.Serialization.FindSerializerForType(typeof(CoordinatorState));
        var committed = new BatchCommitted(7, new SourceCursor(5, 2), 100, 20, 3);
        var state = new CoordinatorState(8, new SourceCursor(5, 2), null, null, [new Checkpoint(7, new SourceCursor(3, 1), new SourceCursor(5, 2), new CommittedBatch(7, 5, 100, 20, 3), 16)]);

        // The first format ended where the optional fields now begin: one flag for the event, one for the state and one per checkpoint.
        var oldCommitted = serializer.ToBinary(committed)[..^1];
        var oldState = serializer.ToBinary(state)[..^2];

        Assert.Equal(committed, serializer.FromBinary(oldCommitted, serializer.Manifest(committed)));
        Assert.Equal(state, serializer.FromBinary(oldState, serializer.Manifest(state)));
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

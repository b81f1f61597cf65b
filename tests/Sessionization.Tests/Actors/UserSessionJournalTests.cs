using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.TestKit.Xunit2;
using Sessionization.Actors;
using Sessionization.Domain;
using static Sessionization.Actors.UserSessionProtocol;

namespace Sessionization.Tests.Actors;

/// <summary>The lean SQLite journal and snapshot store for user sessions, through real persistent actors.</summary>
public sealed class UserSessionJournalTests : TestKit, IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly TempDirectory _temp;

    public UserSessionJournalTests()
        : this(new TempDirectory())
    {
    }

    private UserSessionJournalTests(TempDirectory temp)
        : base(ConfigurationFactory.ParseString($$"""
            sessionization.user-journal {
              class = "Sessionization.Persistence.Journal.UserSessionJournal, Sessionization.Persistence"
              plugin-dispatcher = "akka.actor.default-dispatcher"
              path = "{{temp.Combine("users-journal.db")}}"
            }
            sessionization.user-snapshot-store {
              class = "Sessionization.Persistence.Journal.UserSessionSnapshotStore, Sessionization.Persistence"
              plugin-dispatcher = "akka.actor.default-dispatcher"
              path = "{{temp.Combine("users-snapshots.db")}}"
            }
            """).WithFallback(ActorTestConfig.InMemory))
    {
        _temp = temp;
    }

    private IActorRef Session(long user) =>
        Sys.ActorOf(UserSession.Props(user, 2, "sessionization.user-journal", "sessionization.user-snapshot-store"));

    private BatchApplied Apply(IActorRef session, long user, long batch, params string[] pages)
    {
        session.Tell(new ApplyBatch(user, batch, pages.Select((p, i) => new PageVisit((batch * 100) + i, p)).ToList()));
        return ExpectMsg<BatchApplied>(Patience);
    }

    private void Stop(IActorRef actor)
    {
        Watch(actor);
        Sys.Stop(actor);
        ExpectTerminated(actor, Patience);
    }

    [Fact]
    public void Events_and_snapshots_survive_a_restart_and_a_replayed_batch_is_not_applied_twice()
    {
        var session = Session(7);
        Apply(session, 7, 0, "a");
        Apply(session, 7, 1, "b", "c");
        Apply(session, 7, 2, "d");
        Stop(session);

        var recovered = Session(7);
        var replay = Apply(recovered, 7, 2, "d");
        Assert.Equal("a -> b -> c -> d", replay.Outcome!.Session.ConcatenatedPages);
        Assert.Equal("a -> b -> c -> d -> e", Apply(recovered, 7, 3, "e").Outcome!.Session.ConcatenatedPages);
        Stop(recovered);

        Assert.True(File.Exists(_temp.Combine("users-journal.db")));
        Assert.True(File.Exists(_temp.Combine("users-snapshots.db")));
    }

    [Fact]
    public void Many_users_writing_at_once_each_keep_their_own_session()
    {
        var sessions = Enumerable.Range(1, 300).Select(u => (User: (long)u, Actor: Session(u))).ToList();
        foreach (var (user, actor) in sessions)
            actor.Tell(new ApplyBatch(user, 0, [new PageVisit(user, $"p{user}")]));
        var answers = Enumerable.Range(0, sessions.Count).Select(_ => ExpectMsg<BatchApplied>(Patience)).ToList();

        Assert.Equal(sessions.Select(s => s.User).Order(), answers.Select(a => a.UserId).Order());
        Assert.All(answers, a => Assert.Equal($"p{a.UserId}", a.Outcome!.Session.ConcatenatedPages));
    }

    [Fact]
    public void A_rewind_replays_the_journal_from_the_lean_store()
    {
        var session = Session(9);
        Apply(session, 9, 0, "a");
        Apply(session, 9, 1, "b");
        Apply(session, 9, 2, "c");

        session.Tell(new RewindTo(9, 1));
        ExpectMsg<UserRewound>(Patience);
        Assert.Equal("a -> b2", Apply(session, 9, 1, "b2").Outcome!.Session.ConcatenatedPages);
    }

    [Fact]
    public void Deleting_events_keeps_the_highest_sequence_number()
    {
        var journal = Akka.Persistence.Persistence.Instance.Apply(Sys).JournalFor("sessionization.user-journal");
        var session = Session(11);
        Apply(session, 11, 0, "a");
        Apply(session, 11, 1, "b");

        journal.Tell(new DeleteMessagesTo(UserSession.PersistenceIdFor(11), 2, TestActor));
        ExpectMsg<DeleteMessagesSuccess>(Patience);
        journal.Tell(new ReplayMessages(0, long.MaxValue, long.MaxValue, UserSession.PersistenceIdFor(11), TestActor));
        Assert.Equal(2, ExpectMsg<RecoverySuccess>(Patience).HighestSequenceNr);
    }

    public new void Dispose()
    {
        base.Dispose();
        _temp.Dispose();
    }
}

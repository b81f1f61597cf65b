using Akka.Actor;
using Akka.TestKit.Xunit2;
using CsCheck;
using Sessionization.Actors;
using Sessionization.Domain;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.CoordinatorProtocol;

namespace Sessionization.Tests.Actors;

/// <summary>
/// The determinism contract in the actor simulation: random visits (some behind the watermark, some late), random
/// batchings and a random crash of the whole process at one batch, either after the users' states are saved and
/// before any table is written, or after the tables are written and before the coordinator records the commit. A new
/// process (new actors over the same journal, store and tables) goes on; after the end of input the sessions table
/// must equal the sessions computed at once from every visit that was not quarantined as late.
/// </summary>
public sealed class EventTimeSimulationTests() : TestKit(ActorTestConfig.InMemory)
{
    private const long Minute = 60_000_000L;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    /// <param name="LogLimit">The state store's log limit: 0 applies the log after every batch, a large one never.</param>
    private sealed record Case(EventTimeSettings Settings, Visit[][] Commits, int MaxFilesPerBatch, int CrashBatch, bool CrashAfterWrite, long LogLimit);

    /// <summary>Commits 20 minutes apart whose visits reach 30 minutes back: some join written sessions, some are late.</summary>
    private static readonly Gen<Case> Cases =
        Gen.Select(
            Gen.Select(Gen.OneOf(10L, 25L), Gen.OneOf<long?>(null, 30L), Gen.OneOf(0L, 5L), Gen.OneOf(0L, 15L))
                .Select(s => new EventTimeSettings(s.Item1 * Minute, s.Item2 * Minute, s.Item3 * Minute, s.Item4 * Minute)),
            Gen.Select(Gen.Int[1, 3], Gen.Int[-30, 20], Gen.Int[0, 4]).Array[1, 5].Array[2, 5]
                .Select(commits => commits.Select((visits, c) => visits.Select(v => new Visit(v.Item1, ((c * 20) + 60 + v.Item2) * Minute, $"p{v.Item3}")).ToArray()).ToArray()),
            Gen.Int[1, 3],
            Gen.Int[0, 4],
            Gen.Bool,
            Gen.OneOf(0L, 1L << 30))
        .Select(c => new Case(c.Item1, c.Item2, c.Item3, c.Item4, c.Item5, c.Item6));

    [Fact]
    public void Any_batching_and_any_crash_ends_with_the_direct_sessions_of_the_accepted_visits()
    {
        Cases.Sample(c =>
        {
            using var temp = new TempDirectory();
            var (sessions, late) = Simulate(temp.Path, c).GetAwaiter().GetResult();

            var accepted = SessionKeys.Accepted(c.Commits.SelectMany(v => v), late);
            var direct = new EventTimeSessionPolicy(c.Settings).Direct(accepted);
            Assert.Equal(SessionKeys.Of(direct), SessionKeys.Of(sessions));
        }, iter: 15, threads: 1);
    }

    private async Task<(List<SessionRecord> Sessions, List<Visit> Late)> Simulate(string directory, Case c)
    {
        var pipeline = Pipelines.Resolve(directory, create: true)!;
        var rules = new SessionRules(SessionMode.EventTime, c.Settings);
        var settings = SessionizationSettings.FromConfig(Sys.Settings.Config) with { BaseDirectory = directory, Pipeline = pipeline, Sessions = rules };
        var visits = VisitsTable.In(directory);
        foreach (var commit in c.Commits)
            await visits.AppendAsync([.. commit], "test");

        var process = Start(settings, directory, c.LogLimit, crashAt: c.CrashBatch, afterWrite: c.CrashAfterWrite);
        try
        {
            while (!Drain(process, c.MaxFilesPerBatch, endOfInput: false))
                process = Restart(process, settings, directory, c.LogLimit);
            while (!Drain(process, c.MaxFilesPerBatch, endOfInput: true))
                process = Restart(process, settings, directory, c.LogLimit);
        }
        finally
        {
            Stop(process);
        }

        var late = (await QuarantineTable.In(directory).ReadAllAsync())
            .Select(q => new Visit(q.UserId!.Value, q.VisitTimeMicros!.Value, q.Page!)).ToList();
        Assert.All(await QuarantineTable.In(directory).ReadAllAsync(), q => Assert.StartsWith("late (watermark ", q.Reason));
        return (await SessionTable.Completed(directory).ReadAllAsync(), late);
    }

    /// <summary>Drains to the end; false when the process crashed on the way.</summary>
    private bool Drain(Process process, int maxFilesPerBatch, bool endOfInput)
    {
        process.Actors[0].Tell(new RunUntilDrained(maxFilesPerBatch, TestActor, EndOfInput: endOfInput));
        while (true)
        {
            switch (ExpectMsg<object>(Patience))
            {
                case RunFinished:
                    return true;
                case RunFailed f:
                    throw new InvalidOperationException(f.Reason);
                case Crashed:
                    return false;
            }
        }
    }

    /// <summary>What a process holds: its actors (the coordinator first) and the store it opened.</summary>
    private sealed record Process(IActorRef[] Actors, UserStateStore Store);

    private Process Start(SessionizationSettings settings, string directory, long logLimit, long crashAt = -1, bool afterWrite = false)
    {
        // Event-time mode keeps no per-batch user states, but the coordinator rewinds and prunes that store too.
        var store = UserStateStore.Sqlite(Path.Combine(directory, "state", "users.db"), TimeSpan.FromSeconds(5));
        var eventTimeStore = EventTimeStateStore.Sqlite(Path.Combine(directory, "state", "event-time.db"), TimeSpan.FromSeconds(5), settings.Pipeline!.PipelineId, logLimit);
        var users = Sys.ActorOf(UserSessionRegion.Props(store));
        var realSink = Sys.ActorOf(SessionSink.Props(directory, settings.Pipeline));
        var sink = Sys.ActorOf(Props.Create(() => new CrashingSink(realSink, crashAt, afterWrite, TestActor)));
        var coordinator = Sys.ActorOf(BatchCoordinator.Props(settings, store, users, sink, eventTimeStore));
        return new Process([coordinator, users, sink, realSink], store);
    }

    private Process Restart(Process process, SessionizationSettings settings, string directory, long logLimit)
    {
        Stop(process);
        return Start(settings, directory, logLimit);
    }

    private void Stop(Process process)
    {
        foreach (var actor in process.Actors)
        {
            Watch(actor);
            Sys.Stop(actor);
            ExpectTerminated(actor, Patience);
        }

        process.Store.Dispose();
    }

    private sealed class Crashed
    {
        public static Crashed Instance { get; } = new();
    }

    /// <summary>
    /// The process dies at batch <c>crashAt</c>: before the sink writes anything, or after it wrote every table but
    /// before the coordinator hears of it. Either way the coordinator never commits that attempt.
    /// </summary>
    private sealed class CrashingSink : ReceiveActor
    {
        public CrashingSink(IActorRef sink, long crashAt, bool afterWrite, IActorRef probe)
        {
            var crashed = false;
            Receive<SinkProtocol.WriteBatch>(m =>
            {
                if (m.Batch != crashAt || crashed)
                {
                    sink.Forward(m);
                    return;
                }

                crashed = true;
                if (afterWrite)
                    sink.Ask<SinkProtocol.BatchWritten>(m, Patience).PipeTo(probe, success: _ => Crashed.Instance);
                else
                    probe.Tell(Crashed.Instance);
            });
            ReceiveAny(m => sink.Forward(m));
        }
    }
}

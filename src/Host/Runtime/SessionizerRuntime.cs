using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Serilog;
using Sessionization.Actors;
using Sessionization.Domain;
using Sessionization.Host.Configuration;
using Sessionization.Persistence;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;
using static Sessionization.Actors.CoordinatorProtocol;

namespace Sessionization.Host.Runtime;

/// <summary>
/// The actor system on the .NET Generic Host through Akka.Hosting: the user-session parent, the sink and the
/// batch coordinator, configured from the HOCON built by <see cref="SessionizationConfig"/>.
/// </summary>
public sealed class SessionizerRuntime : IAsyncDisposable
{
    private readonly IHost _host;
    private readonly UserStateStore _store;
    private readonly EventTimeStateStore _eventTimeStore;

    private SessionizerRuntime(IHost host, UserStateStore store, EventTimeStateStore eventTimeStore, IActorRef coordinator, ActorSystem system)
    {
        _host = host;
        _store = store;
        _eventTimeStore = eventTimeStore;
        Coordinator = coordinator;
        System = system;
    }

    public IActorRef Coordinator { get; }

    public ActorSystem System { get; }

    private Microsoft.Extensions.Logging.ILogger BatchLog => _host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Sessionization.Batches");

    /// <summary>The host's services: its health checks among them.</summary>
    public IServiceProvider Services => _host.Services;

    /// <summary>
    /// Starts the actor system for the base directory's pipeline (see <see cref="Pipelines"/>); a base directory
    /// without output tables gets a new pipeline and its empty tables first.
    /// </summary>
    public static Task<SessionizerRuntime> StartAsync(Config config, SessionizationSettings settings, CancellationToken cancellationToken) =>
        StartAsync(config, settings, Task.Run(() => Pipelines.Resolve(settings.BaseDirectory, create: true)!, cancellationToken), cancellationToken);

    /// <summary>Starts the actor system for <paramref name="pipeline"/>, whose tables exist.</summary>
    public static Task<SessionizerRuntime> StartAsync(Config config, SessionizationSettings settings, PipelineIdentity pipeline, CancellationToken cancellationToken) =>
        StartAsync(config, settings, Task.FromResult(pipeline), cancellationToken);

    /// <summary>
    /// The output tables are read (to learn the pipeline) while the actor system starts and its journal and snapshot
    /// store open: on two cores the two halves of start-up overlap, and only the actors that need the pipeline wait
    /// for it.
    /// </summary>
    private static async Task<SessionizerRuntime> StartAsync(Config config, SessionizationSettings settings, Task<PipelineIdentity> resolving, CancellationToken cancellationToken)
    {
        IHost? host = null;
        UserStateStore? store = null;
        var warmedUp = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = false;
        try
        {
            if (SessionizationConfig.IsSqlite(config))
            {
                var stateDirectory = SessionizationConfig.StateDirectory(settings.BaseDirectory);
                PrepareSqlite(stateDirectory);
                SessionizationMetrics.MeasureStateWith(() => StateFilesSize(stateDirectory));
            }

            var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
            builder.Logging.ClearProviders();
            builder.Logging.AddSerilog(Logs.Create(config, config.GetString("sessionization.log-file", null)), dispose: true);
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
            // The checks Akka.Hosting registers below are run by this service (a worker's /healthz and /readyz).
            builder.Services.AddHealthChecks();
            builder.Services.AddAkka("sessionization", akka =>
            {
                akka.AddHocon(config, HoconAddMode.Append);
                // Nothing of Akka's goes to standard output, not even while the loggers stop: it holds the command's own output.
                akka.AddHocon("akka.stdout-loglevel = OFF", HoconAddMode.Prepend);
                // Akka's log goes to the host's logger factory; named fields in its messages become the events' properties.
                akka.ConfigureLoggers(log =>
                {
                    // Warnings and errors only: once the loggers stop, Akka prints anything at its level to standard output.
                    log.LogLevel = Akka.Event.LogLevel.WarningLevel;
                    log.ClearLoggers();
                    log.AddLoggerFactory();
                });
                akka.WithActors((system, _) => system.ActorOf(PersistenceWarmUp.Props(warmedUp), "persistence-warm-up"));
                akka.WithActorSystemLivenessCheck(tags: [ServiceEndpoint.LivenessTag]);
                akka.WithHealthCheck("batch-coordinator", CoordinatorReadinessAsync, HealthStatus.Unhealthy, [ServiceEndpoint.ReadinessTag]);
            });

            host = builder.Build();
            await host.StartAsync(cancellationToken);
            started = true;
            var pipeline = await resolving;
            settings = settings with { Pipeline = pipeline };
            store = OpenStore(() => SessionizationConfig.OpenUserStateStore(config, pipeline.PipelineId), "user session state store");
            var eventTimeStore = OpenStore(() => SessionizationConfig.OpenEventTimeStateStore(config, pipeline.PipelineId), "event-time session state store");
            var system = host.Services.GetRequiredService<ActorSystem>();
            var users = system.ActorOf(UserSessionRegion.Props(store, settings.UserSessionShards, settings.PassivateAfter), "user-sessions");
            var sink = system.ActorOf(SessionSink.Props(settings.BaseDirectory, settings.Pipeline, settings.CheckpointInterval), "session-sink");
            var coordinator = system.ActorOf(BatchCoordinator.Props(settings, store, users, sink, eventTimeStore), BatchCoordinator.Id);
            host.Services.GetRequiredService<ActorRegistry>().Register<BatchCoordinator>(coordinator);
            return new SessionizerRuntime(host, store, eventTimeStore, coordinator, system);
        }
        catch
        {
            // A failed start leaves nothing running: the table reader finishes, the store's writer closes.
            await ((Task)resolving).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            // Nor is a plugin still initializing stopped under it (it would print its failure past the logger).
            if (started)
                await warmedUp.Task.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (host is not null)
            {
                await host.StopAsync(CancellationToken.None);
                host.Dispose();
            }

            store?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A worker is ready when its coordinator has recovered (it answers only then), is polling, and its last attempt
    /// did not fail (it is not backing off).
    /// </summary>
    private static async Task<HealthCheckResult> CoordinatorReadinessAsync(ActorSystem system, ActorRegistry registry, CancellationToken cancellationToken)
    {
        if (!registry.TryGet<BatchCoordinator>(out var coordinator))
            return HealthCheckResult.Unhealthy("the batch coordinator has not started");
        HealthResult health;
        try
        {
            health = await coordinator.Ask<HealthResult>(GetHealth.Instance, TimeSpan.FromSeconds(2), cancellationToken);
        }
        catch (AskTimeoutException)
        {
            return HealthCheckResult.Unhealthy("the batch coordinator did not answer within 2s (recovering, or stopped)");
        }

        if (health.FailuresInARow > 0)
        {
            return HealthCheckResult.Unhealthy(string.Create(
                global::System.Globalization.CultureInfo.InvariantCulture,
                $"backing off after {health.FailuresInARow} failure{(health.FailuresInARow == 1 ? "" : "s")} in a row; next attempt at {health.RetryAtUtc:yyyy-MM-ddTHH:mm:ss}Z: {health.LastFailure}"));
        }

        return health.Polling ? HealthCheckResult.Healthy("polling") : HealthCheckResult.Unhealthy("not polling yet");
    }

    private static long? StateFilesSize(string stateDirectory)
    {
        try
        {
            return new DirectoryInfo(stateDirectory).EnumerateFiles().Sum(f => f.Length);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// Creates the state files in WAL mode once, so readers never wait for the journal's writer; the event-time state
    /// file also gets its page size here, which SQLite takes only while a file is new.
    /// </summary>
    private static void PrepareSqlite(string stateDirectory)
    {
        Directory.CreateDirectory(stateDirectory);
        foreach (var file in new[] { "journal.db", "snapshots.db", SessionizationConfig.UserStateFile, SessionizationConfig.EventTimeStateFile })
        {
            var path = Path.Combine(stateDirectory, file);
            try
            {
                using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
                connection.Open();
                using var command = connection.CreateCommand();
                var create = file == SessionizationConfig.EventTimeStateFile ? EventTimeStateStore.SqliteCreatePragmas : "PRAGMA journal_mode=WAL;";
                command.CommandText = $"{create} PRAGMA quick_check;";
                using var reader = command.ExecuteReader();
                reader.NextResult();
                if (reader.Read() && reader.GetString(0) != "ok")
                    throw new UserFacingException($"state database {path} is corrupt: {reader.GetString(0)}");
            }
            catch (SqliteException e)
            {
                throw new UserFacingException($"state database {path} cannot be opened: {e.Message.Split('\n')[0]}");
            }
        }
    }

    /// <summary>Opens a state store, a failure to do so told in one line naming <paramref name="what"/>.</summary>
    private static T OpenStore<T>(Func<T> open, string what)
    {
        try
        {
            return open();
        }
        catch (Exception e) when (e is global::System.Data.Common.DbException or IOException or InvalidDataException)
        {
            throw new UserFacingException($"the {what} cannot be opened: {e.Message.Split('\n')[0]}");
        }
    }

    /// <summary>Drain-and-exit: processes every committed visit, reporting each batch as it commits.</summary>
    public Task<int> RunUntilDrainedAsync(int maxFilesPerBatch, long? fromBatch, BadRowsMode badRows, bool endOfInput, Action<object> onReport, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var coordinator = Coordinator;
        var log = BatchLog;
        var reporter = System.ActorOf(Akka.Actor.Props.Create(() => new RunReporter(onReport, done, coordinator, log, failuresEndTheRun: true)));
        cancellationToken.Register(() => done.TrySetCanceled());
        Coordinator.Tell(new RunUntilDrained(maxFilesPerBatch, reporter, fromBatch, badRows, endOfInput));
        return done.Task;
    }

    /// <summary>
    /// Polls until <paramref name="stop"/>. A failed batch is not reported here: the coordinator logs it, with its
    /// backoff, as a warning (the log file, and a worker's standard error), and tries again when the backoff has passed.
    /// </summary>
    public async Task PollUntilStoppedAsync(int maxFilesPerBatch, TimeSpan interval, BadRowsMode badRows, Action<object> onReport, CancellationToken stop)
    {
        var never = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var coordinator = Coordinator;
        var log = BatchLog;
        var reporter = System.ActorOf(Akka.Actor.Props.Create(() => new RunReporter(onReport, never, coordinator, log, failuresEndTheRun: false)));
        Coordinator.Tell(new StartPolling(maxFilesPerBatch, interval, reporter, badRows));
        await using (stop.Register(() => never.TrySetResult(0)))
            await never.Task;
    }

    public async Task<CoordinatorState> GetStateAsync(CancellationToken cancellationToken) =>
        (await Coordinator.Ask<StatusResult>(GetStatus.Instance, TimeSpan.FromSeconds(60), cancellationToken)).State;

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        _host.Dispose();
        // Closed after the actors: a save still queued is written, not dropped; nor is the state log's application,
        // which the next start would otherwise read back and apply again.
        _store.Dispose();
        await _eventTimeStore.WhenAppliedAsync();
    }

    /// <summary>
    /// Recovers an empty persistence id and stops: the journal and snapshot store plugins start, create or check
    /// their tables and compile their first queries while the output tables are still being read, so the
    /// coordinator's own recovery does not pay for that. It writes nothing. <paramref name="done"/> completes when it
    /// stops, recovered or not: a plugin that failed to start is reported by the coordinator's own recovery.
    /// </summary>
    private sealed class PersistenceWarmUp(TaskCompletionSource done) : Akka.Persistence.UntypedPersistentActor
    {
        public static Akka.Actor.Props Props(TaskCompletionSource done) => Akka.Actor.Props.Create(() => new PersistenceWarmUp(done));

        public override string PersistenceId => "sessionization-start-up";

        protected override void OnRecover(object message)
        {
            if (message is Akka.Persistence.RecoveryCompleted)
                Context.Stop(Self);
        }

        protected override void OnCommand(object message) => Unhandled(message);

        protected override void PostStop()
        {
            done.TrySetResult();
            base.PostStop();
        }
    }

    private sealed class CoordinatorGone
    {
        public static CoordinatorGone Instance { get; } = new();
    }

    /// <summary>Receives the coordinator's reports at the edge and turns them into console output and a result.</summary>
    private sealed class RunReporter : ReceiveActor
    {
        public RunReporter(Action<object> onReport, TaskCompletionSource<int> done, IActorRef coordinator, Microsoft.Extensions.Logging.ILogger log, bool failuresEndTheRun)
        {
            Context.Watch(coordinator);
            Context.System.EventStream.Subscribe(Self, typeof(CoordinatorFailed));
            string? failure = null;
            Receive<CoordinatorFailed>(f => failure = f.Reason);
            Receive<BatchReport>(r =>
            {
                log.LogInformation(
                    "batch {Batch} committed: {Files} files (visits_table v{FromVersion}..v{ToVersion}), {Visits} visits, {Users} users, {Pending} pending, {Completed} completed, {Quarantined} quarantined in {DurationMs} ms",
                    r.Batch,
                    r.Files,
                    r.FromVersion,
                    r.ToVersion,
                    r.Visits,
                    r.ActiveUsers,
                    r.Pending,
                    r.Completed,
                    r.Quarantined,
                    (long)r.Elapsed.TotalMilliseconds);
                onReport(r);
            });
            Receive<RewindReport>(r =>
            {
                log.LogInformation("rewound to batch {Batch}: took back {UndoneBatches} batches, reset {UsersReset} user sessions", r.Batch, r.UndoneBatches, r.UsersReset);
                onReport(r);
            });
            Receive<CompactionReport>(r =>
            {
                log.LogInformation(
                    "compacted the session tables' files of batches before {Batch}: {Compaction}",
                    r.Before,
                    Persistence.Tables.Compaction.Describe(r.Results));
                onReport(r);
            });
            Receive<RunFinished>(f => done.TrySetResult(f.Batches));
            Receive<RunFailed>(f =>
            {
                // A worker's coordinator logged the failure and tries again after its backoff; if the coordinator is
                // stopping instead (it published why first), the worker ends with that reason once it is gone.
                if (failuresEndTheRun)
                    done.TrySetException(new UserFacingException(f.Reason));
            });
            // The coordinator stops only when it cannot go on (its journal or snapshot store failed); say why.
            // Terminated overtakes ordinary messages, so the reason it published is read one message later.
            Receive<Terminated>(_ => Self.Tell(CoordinatorGone.Instance));
            Receive<CoordinatorGone>(_ => done.TrySetException(new UserFacingException(
                failure ?? $"the batch coordinator stopped: {Logs.LastError ?? "see sessionize.log in the state directory"}")));
        }
    }
}

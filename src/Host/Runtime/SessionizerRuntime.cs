using Akka.Actor;
using Akka.Configuration;
using Akka.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Sessionization.Actors;
using Sessionization.Domain;
using Sessionization.Host.Configuration;
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

    private SessionizerRuntime(IHost host, UserStateStore store, IActorRef coordinator, ActorSystem system)
    {
        _host = host;
        _store = store;
        Coordinator = coordinator;
        System = system;
    }

    public IActorRef Coordinator { get; }

    public ActorSystem System { get; }

    /// <summary>
    /// Starts the actor system for the base directory's pipeline (see <see cref="Pipelines"/>); a base directory
    /// without output tables gets a new pipeline and its empty tables first.
    /// </summary>
    public static async Task<SessionizerRuntime> StartAsync(Config config, SessionizationSettings settings, CancellationToken cancellationToken)
    {
        var pipeline = Pipelines.Resolve(settings.BaseDirectory, create: true)!;
        return await StartAsync(config, settings, pipeline, cancellationToken);
    }

    /// <summary>Starts the actor system for <paramref name="pipeline"/>, whose tables exist.</summary>
    public static async Task<SessionizerRuntime> StartAsync(Config config, SessionizationSettings settings, PipelineIdentity pipeline, CancellationToken cancellationToken)
    {
        settings = settings with { Pipeline = pipeline };
        if (SessionizationConfig.IsSqlite(config))
            PrepareSqlite(SessionizationConfig.StateDirectory(settings.BaseDirectory));

        var store = OpenStore(config, pipeline.PipelineId);
        var builder = new HostApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(30));
        builder.Services.AddAkka("sessionization", akka =>
        {
            akka.AddHocon(config, HoconAddMode.Append);
            akka.WithActors((system, registry) =>
            {
                var users = system.ActorOf(UserSessionRegion.Props(store, settings.UserSessionShards, settings.PassivateAfter), "user-sessions");
                var sink = system.ActorOf(SessionSink.Props(settings.BaseDirectory, settings.Pipeline, settings.CheckpointInterval), "session-sink");
                registry.Register<BatchCoordinator>(system.ActorOf(BatchCoordinator.Props(settings, store, users, sink), BatchCoordinator.Id));
            });
        });

        var host = builder.Build();
        try
        {
            await host.StartAsync(cancellationToken);
            var registry = host.Services.GetRequiredService<ActorRegistry>();
            return new SessionizerRuntime(host, store, await registry.GetAsync<BatchCoordinator>(cancellationToken), host.Services.GetRequiredService<ActorSystem>());
        }
        catch
        {
            // The store's writer would otherwise outlive a runtime that never started.
            host.Dispose();
            store.Dispose();
            throw;
        }
    }

    /// <summary>Creates the state files in WAL mode once, so readers never wait for the journal's writer.</summary>
    private static void PrepareSqlite(string stateDirectory)
    {
        Directory.CreateDirectory(stateDirectory);
        foreach (var file in new[] { "journal.db", "snapshots.db", SessionizationConfig.UserStateFile })
        {
            var path = Path.Combine(stateDirectory, file);
            try
            {
                using var connection = new SqliteConnection($"Data Source={path};Pooling=False");
                connection.Open();
                using var command = connection.CreateCommand();
                command.CommandText = "PRAGMA journal_mode=WAL; PRAGMA quick_check;";
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

    private static UserStateStore OpenStore(Config config, string pipelineId)
    {
        try
        {
            return SessionizationConfig.OpenUserStateStore(config, pipelineId);
        }
        catch (Exception e) when (e is global::System.Data.Common.DbException or IOException)
        {
            throw new UserFacingException($"the user session state store cannot be opened: {e.Message.Split('\n')[0]}");
        }
    }

    /// <summary>Drain-and-exit: processes every committed visit, reporting each batch as it commits.</summary>
    public Task<int> RunUntilDrainedAsync(int maxFilesPerBatch, long? fromBatch, BadRowsMode badRows, Action<object> onReport, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        Action<string> failuresEndTheRun = _ => { };
        var coordinator = Coordinator;
        var reporter = System.ActorOf(Akka.Actor.Props.Create(() => new RunReporter(onReport, failuresEndTheRun, done, coordinator, true)));
        cancellationToken.Register(() => done.TrySetCanceled());
        Coordinator.Tell(new RunUntilDrained(maxFilesPerBatch, reporter, fromBatch, badRows));
        return done.Task;
    }

    /// <summary>Long-running: polls until <paramref name="stop"/> fires; failed batches are reported and retried.</summary>
    public async Task PollUntilStoppedAsync(int maxFilesPerBatch, TimeSpan interval, BadRowsMode badRows, Action<object> onReport, Action<string> onFailure, CancellationToken stop)
    {
        var never = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var coordinator = Coordinator;
        var reporter = System.ActorOf(Akka.Actor.Props.Create(() => new RunReporter(onReport, onFailure, never, coordinator, false)));
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
        // Closed after the actors: a save still queued is written, not dropped.
        _store.Dispose();
    }

    private sealed class CoordinatorGone
    {
        public static CoordinatorGone Instance { get; } = new();
    }

    /// <summary>Receives the coordinator's reports at the edge and turns them into console output and a result.</summary>
    private sealed class RunReporter : ReceiveActor
    {
        public RunReporter(Action<object> onReport, Action<string> onFailure, TaskCompletionSource<int> done, IActorRef coordinator, bool failuresEndTheRun)
        {
            Context.Watch(coordinator);
            Context.System.EventStream.Subscribe(Self, typeof(CoordinatorFailed));
            string? failure = null;
            Receive<CoordinatorFailed>(f => failure = f.Reason);
            Receive<BatchReport>(onReport);
            Receive<RewindReport>(onReport);
            Receive<RunFinished>(f => done.TrySetResult(f.Batches));
            Receive<RunFailed>(f =>
            {
                if (failuresEndTheRun)
                    done.TrySetException(new UserFacingException(f.Reason));
                else if (failure is null)
                    onFailure(f.Reason);
                // Otherwise the coordinator is stopping (it published why first): nothing will be retried, and
                // the worker ends with that reason as soon as the coordinator is gone.
            });
            // The coordinator stops only when it cannot go on (its journal or snapshot store failed); say why.
            // Terminated overtakes ordinary messages, so the reason it published is read one message later.
            Receive<Terminated>(_ => Self.Tell(CoordinatorGone.Instance));
            Receive<CoordinatorGone>(_ => done.TrySetException(new UserFacingException(
                failure ?? $"the batch coordinator stopped: {OneLineLogger.LastError ?? "see sessionize.log in the state directory"}")));
        }
    }
}

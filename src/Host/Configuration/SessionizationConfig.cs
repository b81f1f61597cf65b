using System.Globalization;
using Akka.Configuration;
using Sessionization.Actors;
using Sessionization.Host.Runtime;
using Sessionization.Persistence.Tables;
using Sessionization.Persistence.UserState;

namespace Sessionization.Host.Configuration;

/// <summary>Overrides given on the command line; null means "not given".</summary>
public sealed record CommandLineOverrides(
    string? BaseDirectory = null,
    int? MaxFilesPerBatch = null,
    TimeSpan? PollInterval = null,
    string? Provider = null,
    string? ConnectionString = null,
    string? BadRows = null,
    string? ConfigFile = null,
    string? LogFormat = null,
    IReadOnlyDictionary<string, string?>? Sessions = null);

/// <summary>
/// Builds the one configuration the process runs with: HOCON defaults from <c>hocon/</c>, overridden by
/// <c>SESSIONIZATION_*</c> environment variables, overridden by command-line flags.
/// </summary>
public static class SessionizationConfig
{
    public static string HoconDirectory => Path.Combine(AppContext.BaseDirectory, "hocon");

    /// <summary>The settings under <c>sessionization.sessions</c>; each is also a flag (<c>--gap</c>) and an environment variable (<c>SESSIONIZATION_SESSIONS_GAP</c>).</summary>
    public static readonly string[] SessionSettingNames = ["mode", "gap", "max-duration", "watermark-delay", "allowed-lateness", "idle-close"];

    /// <summary>Event-time flags given while the mode is batches are a mistake to hear about, not to ignore.</summary>
    public static void CheckEventTimeFlags(IReadOnlyDictionary<string, string?> given, SessionizationSettings settings)
    {
        var eventTimeOnly = given.Where(g => g.Key != "mode" && g.Value is not null).Select(g => "--" + g.Key).ToList();
        if (eventTimeOnly.Count > 0 && settings.Sessions.Mode == Domain.SessionMode.Batches)
            throw new UserFacingException($"{string.Join(", ", eventTimeOnly)} only appl{(eventTimeOnly.Count == 1 ? "ies" : "y")} with --mode event-time (the mode is batches)");
    }

    public static Config Build(CommandLineOverrides flags, IReadOnlyDictionary<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        var defaults = ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(HoconDirectory, "sessionization.conf")));
        // A user's HOCON file sits between the defaults and the environment.
        var configFile = flags.ConfigFile ?? (environment.TryGetValue("SESSIONIZATION_CONFIG", out var fromEnvironment) ? fromEnvironment : null);
        if (!string.IsNullOrEmpty(configFile))
        {
            if (!File.Exists(configFile))
                throw new ConfigurationException($"configuration file {configFile} does not exist");
            defaults = ParseFile(configFile).WithFallback(defaults);
        }

        var overrides = new List<string>();
        void Set(string key, string? value)
        {
            if (!string.IsNullOrEmpty(value))
                overrides.Add($"{key} = {Quote(value)}");
        }

        string? Env(string name) => environment.TryGetValue(name, out var v) ? v : null;

        // Environment first, flags after: a later HOCON line wins over an earlier one.
        Set("sessionization.base-dir", Env("SESSIONIZATION_BASE_DIR"));
        Set("sessionization.max-files-per-batch", Env("SESSIONIZATION_MAX_FILES_PER_BATCH"));
        Set("sessionization.poll-interval", Env("SESSIONIZATION_POLL_INTERVAL"));
        Set("sessionization.persistence.provider", Env("SESSIONIZATION_PERSISTENCE_PROVIDER"));
        Set("sessionization.persistence.connection-string", Env("SESSIONIZATION_CONNECTION_STRING"));
        Set("sessionization.bad-rows", Env("SESSIONIZATION_BAD_ROWS"));
        Set("sessionization.checkpoints.retain", Env("SESSIONIZATION_CHECKPOINTS_RETAIN"));
        Set("sessionization.log-format", Env("SESSIONIZATION_LOG_FORMAT"));
        Set("sessionization.tables.optimize-every", Env("SESSIONIZATION_TABLES_OPTIMIZE_EVERY"));
        Set("sessionization.tables.optimize-target-size", Env("SESSIONIZATION_TABLES_OPTIMIZE_TARGET_SIZE"));
        foreach (var name in SessionSettingNames)
            Set($"sessionization.sessions.{name}", Env("SESSIONIZATION_SESSIONS_" + name.Replace('-', '_').ToUpperInvariant()));
        Set("sessionization.base-dir", flags.BaseDirectory);
        Set("sessionization.max-files-per-batch", flags.MaxFilesPerBatch?.ToString(CultureInfo.InvariantCulture));
        Set("sessionization.poll-interval", flags.PollInterval is { } p ? $"{(long)p.TotalMilliseconds}ms" : null);
        Set("sessionization.persistence.provider", flags.Provider);
        Set("sessionization.persistence.connection-string", flags.ConnectionString);
        Set("sessionization.bad-rows", flags.BadRows);
        Set("sessionization.log-format", flags.LogFormat);
        foreach (var (name, value) in flags.Sessions ?? new Dictionary<string, string?>())
            Set($"sessionization.sessions.{name}", value);

        var config = ConfigurationFactory.ParseString(string.Join("\n", overrides)).WithFallback(defaults)
            .WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration);
        return WithPersistence(config);
    }

    /// <summary>A user's HOCON file; an empty one sets nothing, a broken one is refused in one line naming it.</summary>
    private static Config ParseFile(string path)
    {
        var text = File.ReadAllText(path);
        if (string.IsNullOrWhiteSpace(text))
            return Config.Empty;
        try
        {
            return ConfigurationFactory.ParseString(text);
        }
        catch (Exception e)
        {
            // The parser's own reason is kept where it has one; a null reference inside it says nothing to a user.
            var reason = e is NullReferenceException or ArgumentNullException ? "" : $": {e.Message.Split('\n')[0].Trim().TrimEnd(':')}";
            throw new ConfigurationException($"configuration file {path} is not valid HOCON{reason}");
        }
    }

    /// <summary>Points the journal and snapshot store at the configured database.</summary>
    private static Config WithPersistence(Config config)
    {
        var provider = config.GetString("sessionization.persistence.provider").ToLowerInvariant();
        string journal, snapshots;
        switch (provider)
        {
            case "sqlite":
                var state = StateDirectory(config);
                // SQLite has one writer: journal and snapshots in separate files so neither waits for the other.
                // How long a write waits for SQLite's single writer lock before it fails.
                var busy = (int)Math.Ceiling(config.GetTimeSpan("sessionization.persistence.busy-timeout", TimeSpan.FromSeconds(30)).TotalSeconds);
                journal = $"Data Source={Path.Combine(state, "journal.db")};Default Timeout={busy}";
                snapshots = $"Data Source={Path.Combine(state, "snapshots.db")};Default Timeout={busy}";
                break;
            case "postgresql":
                journal = snapshots = config.GetString("sessionization.persistence.connection-string");
                if (string.IsNullOrWhiteSpace(journal))
                    throw new ConfigurationException("sessionization.persistence.provider is postgresql but no connection string is set (--connection-string or SESSIONIZATION_CONNECTION_STRING)");
                try
                {
                    _ = new Npgsql.NpgsqlConnectionStringBuilder(journal);
                }
                catch (Exception e) when (e is ArgumentException or FormatException or InvalidCastException)
                {
                    // The string itself is not repeated: it may hold a password.
                    throw new ConfigurationException($"sessionization.persistence.connection-string is not a PostgreSQL connection string (Host=...;Database=...;Username=...): {e.Message.Split('\n')[0].Trim()}");
                }

                config = ConfigurationFactory.ParseString(File.ReadAllText(Path.Combine(HoconDirectory, "postgresql.conf"))).WithFallback(config);
                break;
            default:
                throw new ConfigurationException($"sessionization.persistence.provider '{provider}' is not supported (use sqlite or postgresql)");
        }

        var logFile = Path.Combine(StateDirectory(config), "sessionize.log");
        return ConfigurationFactory.ParseString(
            $"sessionization.log-file = {Quote(logFile)}\n" +
            $"akka.persistence.journal.sql.connection-string = {Quote(journal)}\n" +
            $"akka.persistence.snapshot-store.sql.connection-string = {Quote(snapshots)}").WithFallback(config);
    }

    public static string StateDirectory(string baseDirectory) => Persistence.CoordinatorActivity.StateDirectory(baseDirectory);

    private static string StateDirectory(Config config) => StateDirectory(Path.GetFullPath(config.GetString("sessionization.base-dir")));

    public static SessionizationSettings Settings(Config config)
    {
        var settings = SessionizationSettings.FromConfig(config);
        _ = Logs.Format(config);
        if (settings.MaxFilesPerBatch < 1)
            throw new ConfigurationException($"max-files-per-batch must be at least 1 (got {settings.MaxFilesPerBatch})");
        return settings with { BaseDirectory = Path.GetFullPath(settings.BaseDirectory) };
    }

    /// <summary>
    /// The user session state store on the configured provider: its own SQLite file beside the coordinator's
    /// (<c>state/users.db</c>), or a table in the PostgreSQL database.
    /// </summary>
    public static UserStateStore OpenUserStateStore(Config config, string pipelineId)
    {
        if (!IsSqlite(config))
            return UserStateStore.PostgreSql(ConnectionString(config), pipelineId);
        return UserStateStore.Sqlite(UserStatePath(config), BusyTimeout(config), pipelineId);
    }

    /// <summary>The event-time session state store, beside the user state store: <c>state/event-time.db</c>, or a table in the PostgreSQL database.</summary>
    public static EventTimeStateStore OpenEventTimeStateStore(Config config, string pipelineId)
    {
        var logLimit = EventTimeLogLimit(config);
        if (!IsSqlite(config))
            return EventTimeStateStore.PostgreSql(ConnectionString(config), pipelineId, logLimit);
        return EventTimeStateStore.Sqlite(Path.Combine(StateDirectory(config), EventTimeStateFile), BusyTimeout(config), pipelineId, logLimit);
    }

    /// <summary><c>sessionization.persistence.event-time-log-limit</c>: a size, or refused naming the setting.</summary>
    public static long EventTimeLogLimit(Config config)
    {
        const string Path = "sessionization.persistence.event-time-log-limit";
        if (!config.HasPath(Path))
            return EventTimeStateStore.DefaultLogLimitBytes;
        var text = config.GetString(Path);
        return Compaction.TryParseSize(text) ?? throw new ConfigurationException($"{Path} '{text}' is not {Compaction.SizeExamples}");
    }

    private static string ConnectionString(Config config) => config.GetString("sessionization.persistence.connection-string");

    private static TimeSpan BusyTimeout(Config config) => config.GetTimeSpan("sessionization.persistence.busy-timeout", TimeSpan.FromSeconds(30));

    public const string UserStateFile = "users.db";

    /// <summary>The SQLite file of the event-time session states, beside the user states.</summary>
    public const string EventTimeStateFile = "event-time.db";

    /// <summary>The SQLite file of the user session states.</summary>
    public static string UserStatePath(Config config) => Path.Combine(StateDirectory(config), UserStateFile);

    public static bool IsSqlite(Config config) =>
        config.GetString("sessionization.persistence.provider").Equals("sqlite", StringComparison.OrdinalIgnoreCase);

    private static string Quote(string value) => "\"" + value.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
}

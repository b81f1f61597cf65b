using Sessionization.Host.Configuration;

namespace Sessionization.Tests.Cli;

public class ConfigurationTests
{
    private static readonly Dictionary<string, string?> NoEnvironment = [];

    [Fact]
    public void Hocon_defaults_apply_when_nothing_overrides_them()
    {
        var settings = SessionizationConfig.Settings(SessionizationConfig.Build(new CommandLineOverrides(), NoEnvironment));

        Assert.Equal(Path.GetFullPath("./data"), settings.BaseDirectory);
        Assert.Equal(1000, settings.MaxFilesPerBatch);
        Assert.Equal(TimeSpan.FromSeconds(1), settings.PollInterval);
        Assert.Equal(100, settings.RetainCheckpoints);
    }

    [Fact]
    public void Session_settings_default_to_the_seed_rule_and_come_from_hocon_the_environment_or_flags()
    {
        var defaults = SessionizationConfig.Settings(SessionizationConfig.Build(new CommandLineOverrides(), NoEnvironment)).Sessions;
        Assert.Equal("batches", defaults.Describe());
        Assert.Null(defaults.IdleClose);

        var environment = new Dictionary<string, string?> { ["SESSIONIZATION_SESSIONS_MODE"] = "event-time", ["SESSIONIZATION_SESSIONS_GAP"] = "10m" };
        var flags = new CommandLineOverrides(Sessions: new Dictionary<string, string?> { ["max-duration"] = "24h", ["allowed-lateness"] = "90s", ["idle-close"] = "2m" });
        var sessions = SessionizationConfig.Settings(SessionizationConfig.Build(flags, environment)).Sessions;

        Assert.Equal("event-time gap=10m max-duration=1d watermark-delay=0s allowed-lateness=90s", sessions.Describe());
        Assert.Equal(TimeSpan.FromMinutes(2), sessions.IdleClose);
    }

    [Theory]
    [InlineData("mode", "sessions", "sessionization.sessions.mode 'sessions' is not batches or event-time")]
    [InlineData("gap", "0s", "sessionization.sessions.gap '0s' is not a positive duration like 90s, 30m or 24h")]
    [InlineData("gap", "30 minutes", "sessionization.sessions.gap '30 minutes' is not a positive duration")]
    [InlineData("max-duration", "-1h", "sessionization.sessions.max-duration '-1h' is not a positive duration like 90s, 30m or 24h, or off")]
    [InlineData("watermark-delay", "soon", "sessionization.sessions.watermark-delay 'soon' is not a duration like 0s, 90s, 30m or 24h")]
    [InlineData("idle-close", "0s", "sessionization.sessions.idle-close '0s' is not a positive duration like 90s, 30m or 24h, or off")]
    public void A_bad_session_setting_is_refused_naming_it(string name, string value, string message)
    {
        var flags = new CommandLineOverrides(Sessions: new Dictionary<string, string?> { [name] = value });
        var e = Assert.Throws<Akka.Configuration.ConfigurationException>(() => SessionizationConfig.Settings(SessionizationConfig.Build(flags, NoEnvironment)));
        Assert.StartsWith(message, e.Message);
    }

    [Fact]
    public void Environment_overrides_hocon_and_flags_override_the_environment()
    {
        var environment = new Dictionary<string, string?> { ["SESSIONIZATION_BASE_DIR"] = "/tmp/from-env", ["SESSIONIZATION_MAX_FILES_PER_BATCH"] = "7" };

        var fromEnvironment = SessionizationConfig.Settings(SessionizationConfig.Build(new CommandLineOverrides(), environment));
        Assert.Equal("/tmp/from-env", fromEnvironment.BaseDirectory);
        Assert.Equal(7, fromEnvironment.MaxFilesPerBatch);

        var fromFlags = SessionizationConfig.Settings(SessionizationConfig.Build(new CommandLineOverrides(BaseDirectory: "/tmp/from-flag", PollInterval: TimeSpan.FromMilliseconds(250)), environment));
        Assert.Equal("/tmp/from-flag", fromFlags.BaseDirectory);
        Assert.Equal(7, fromFlags.MaxFilesPerBatch);
        Assert.Equal(TimeSpan.FromMilliseconds(250), fromFlags.PollInterval);
    }

    [Fact]
    public void The_event_time_state_log_limit_is_a_size_and_a_bad_one_is_refused_naming_it()
    {
        Assert.Equal(16L << 20, SessionizationConfig.EventTimeLogLimit(SessionizationConfig.Build(new CommandLineOverrides(), NoEnvironment)));
        var config = Akka.Configuration.ConfigurationFactory.ParseString("sessionization.persistence.event-time-log-limit = 512KiB");
        Assert.Equal(512L << 10, SessionizationConfig.EventTimeLogLimit(config));

        var bad = Akka.Configuration.ConfigurationFactory.ParseString("sessionization.persistence.event-time-log-limit = lots");
        var e = Assert.Throws<Akka.Configuration.ConfigurationException>(() => SessionizationConfig.EventTimeLogLimit(bad));
        Assert.Equal("sessionization.persistence.event-time-log-limit 'lots' is not a size like 128MiB, 512KiB or 1GiB", e.Message);
    }

    [Fact]
    public void Sqlite_state_lives_in_separate_files_under_the_base_directory()
    {
        var config = SessionizationConfig.Build(new CommandLineOverrides(BaseDirectory: "/tmp/base"), NoEnvironment);

        Assert.Equal("Data Source=/tmp/base/state/journal.db;Default Timeout=30", config.GetString("akka.persistence.journal.sql.connection-string"));
        Assert.Equal("Data Source=/tmp/base/state/snapshots.db;Default Timeout=30", config.GetString("akka.persistence.snapshot-store.sql.connection-string"));
        Assert.Equal("SQLite.MS", config.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Equal("read-uncommitted", config.GetString("akka.persistence.journal.sql.read-isolation-level"));
        Assert.Equal("/tmp/base/state/users.db", SessionizationConfig.UserStatePath(config));
    }

    [Fact]
    public void The_postgresql_provider_takes_the_connection_string_and_needs_one()
    {
        var config = SessionizationConfig.Build(new CommandLineOverrides(Provider: "postgresql", ConnectionString: "Host=db;Database=s"), NoEnvironment);

        Assert.Equal("Host=db;Database=s", config.GetString("akka.persistence.journal.sql.connection-string"));
        Assert.Equal("Host=db;Database=s", config.GetString("akka.persistence.snapshot-store.sql.connection-string"));
        Assert.StartsWith("PostgreSQL", config.GetString("akka.persistence.journal.sql.provider-name"));
        Assert.Throws<Akka.Configuration.ConfigurationException>(() => SessionizationConfig.Build(new CommandLineOverrides(Provider: "postgresql"), NoEnvironment));
        Assert.Throws<Akka.Configuration.ConfigurationException>(() => SessionizationConfig.Build(new CommandLineOverrides(Provider: "oracle"), NoEnvironment));
    }
}

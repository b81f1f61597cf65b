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

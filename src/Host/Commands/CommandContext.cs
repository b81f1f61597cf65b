using Akka.Configuration;
using Sessionization.Actors;
using Sessionization.Host.Configuration;
using Sessionization.Host.Output;
using Sessionization.Host.Runtime;

namespace Sessionization.Host.Commands;

/// <summary>What every command needs: the merged configuration, the typed settings and where to print.</summary>
public sealed class CommandContext(Config config, TextWriter output)
{
    public Config Config { get; } = config;

    public SessionizationSettings Settings { get; } = SessionizationConfig.Settings(config);

    public TextWriter Output { get; } = output;

    /// <summary>Whether a long command may draw live progress on a terminal; the demo's walkthrough prints only its tables.</summary>
    public bool ShowsProgress { get; init; } = true;

    /// <summary>Where a long command's progress goes: a terminal's live display if it may draw one, else nowhere.</summary>
    public TextWriter? ProgressTerminal => ShowsProgress && LiveProgress.Interactive(Output) ? Output : null;

    public string BaseDirectory => Settings.BaseDirectory;

    /// <summary>Read commands never create the base directory; a missing one is the user's mistake to hear about.</summary>
    public void RequireBaseDirectory()
    {
        if (File.Exists(BaseDirectory))
            throw new UserFacingException($"base directory {BaseDirectory} is a file, not a directory (set --base-dir to the directory that holds visits_table)");
        if (!Directory.Exists(BaseDirectory))
            throw new UserFacingException($"base directory {BaseDirectory} does not exist (set --base-dir, or run generate-new-rows first)");
    }
}

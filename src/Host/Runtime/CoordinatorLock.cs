using System.Diagnostics;

namespace Sessionization.Host.Runtime;

/// <summary>
/// Ensures one coordinator per base directory. The lock is an OS file lock, released by the kernel when the
/// holding process dies, so a killed run never leaves it stuck; the holder's identity is kept beside it.
/// </summary>
public sealed class CoordinatorLock : IDisposable
{
    private readonly FileStream _lock;
    private readonly string _ownerPath;

    private CoordinatorLock(FileStream @lock, string ownerPath)
    {
        _lock = @lock;
        _ownerPath = ownerPath;
    }

    public static CoordinatorLock Acquire(string stateDirectory, string command)
    {
        Directory.CreateDirectory(stateDirectory);
        var lockPath = Path.Combine(stateDirectory, "coordinator.lock");
        var ownerPath = Path.Combine(stateDirectory, "coordinator.owner");
        try
        {
            var stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            File.WriteAllText(ownerPath, $"pid {Environment.ProcessId} ({command}) on {Environment.MachineName} since {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss}Z");
            return new CoordinatorLock(stream, ownerPath);
        }
        catch (IOException)
        {
            var owner = File.Exists(ownerPath) ? File.ReadAllText(ownerPath).Trim() : "another process";
            throw new UserFacingException($"another coordinator is active on {Path.GetDirectoryName(stateDirectory)}: {owner}");
        }
    }

    /// <summary>
    /// The holder of the lock as its owner file names it, if that process is alive; null when no coordinator runs. The
    /// lock itself is not tried: a reader holding it even for a moment could turn a starting worker away.
    /// </summary>
    public static string? ActiveOwner(string stateDirectory)
    {
        string owner;
        try
        {
            owner = File.ReadAllText(Path.Combine(stateDirectory, "coordinator.owner")).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        // "pid N (command) on HOST since ...": a holder on this machine is checked; one on another is taken at its word.
        var words = owner.Split(' ');
        if (words is ["pid", var pid, _, "on", var host, ..] && host == Environment.MachineName && int.TryParse(pid, out var id))
        {
            try
            {
                using var process = Process.GetProcessById(id);
                return process.HasExited ? null : owner;
            }
            catch (ArgumentException)
            {
                return null;
            }
        }

        return owner;
    }

    public void Dispose()
    {
        try
        {
            File.Delete(_ownerPath);
        }
        catch (IOException)
        {
            Debug.WriteLine("owner file already gone");
        }

        _lock.Dispose();
    }
}

/// <summary>An error meant for the user: printed as one line, exit code 1, no stack trace.</summary>
public sealed class UserFacingException(string message) : Exception(message);

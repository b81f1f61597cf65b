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

using Sessionization.Persistence.UserState;

namespace Sessionization.Tests.Actors;

/// <summary>A real user state store with faults switched on and off by the test: failing saves for chosen users, failing loads.</summary>
public sealed class FaultyUserStateStore(IUserStateStore inner) : IUserStateStore
{
    public Func<long, bool> FailSaveFor { get; set; } = _ => false;

    public bool FailLoads { get; set; }

    public int Saves => _saves;

    private int _saves;

    public Task SaveAsync(long batch, long userId, byte[] state)
    {
        if (FailSaveFor(userId))
            return Task.FromException(new IOException($"disk I/O error (injected) saving user {userId}"));
        Interlocked.Increment(ref _saves);
        return inner.SaveAsync(batch, userId, state);
    }

    public Task<Dictionary<long, StoredUserState>> LoadForBatchAsync(long batch, CancellationToken cancellationToken = default) =>
        FailLoads ? Task.FromException<Dictionary<long, StoredUserState>>(new IOException("database disk image is malformed (injected)")) : inner.LoadForBatchAsync(batch, cancellationToken);

    public Task<long> RewindAsync(long batch) => inner.RewindAsync(batch);

    public Task PruneBeforeAsync(long batch) => inner.PruneBeforeAsync(batch);

    public void Dispose() => inner.Dispose();
}

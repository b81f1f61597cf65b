using System.Collections.Concurrent;
using Sessionization.Domain;
using Sessionization.Persistence.UserState;

namespace Sessionization.Tests.Actors;

/// <summary>A real user state store with faults switched on and off by the test: failing saves for chosen users, failing loads.</summary>
public sealed class FaultyUserStateStore(IUserStateStore inner) : IUserStateStore
{
    private readonly ConcurrentDictionary<long, UserStateSaveException> _failed = new();
    private int _saves;

    public Func<long, bool> FailSaveFor { get; set; } = _ => false;

    public bool FailLoads { get; set; }

    public int Saves => _saves;

    public void Save(long batch, UserSessionState state)
    {
        if (FailSaveFor(state.UserId))
        {
            _failed.TryAdd(batch, new UserStateSaveException(batch, state.UserId, new IOException($"disk I/O error (injected) saving user {state.UserId}")));
            return;
        }

        Interlocked.Increment(ref _saves);
        inner.Save(batch, state);
    }

    public async Task FlushAsync(long batch)
    {
        await inner.FlushAsync(batch);
        if (_failed.TryRemove(batch, out var failure))
            throw failure;
    }

    public Task<Dictionary<long, StoredUserState>> LoadForBatchAsync(long batch, CancellationToken cancellationToken = default) =>
        FailLoads ? Task.FromException<Dictionary<long, StoredUserState>>(new IOException("database disk image is malformed (injected)")) : inner.LoadForBatchAsync(batch, cancellationToken);

    public Task<long> RewindAsync(long batch) => inner.RewindAsync(batch);

    public Task PruneBeforeAsync(long batch) => inner.PruneBeforeAsync(batch);

    public void Dispose() => inner.Dispose();
}

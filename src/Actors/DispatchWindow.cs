namespace Sessionization.Actors;

/// <summary>
/// Sends a batch's per-user messages a window at a time: at most <c>limit</c> unanswered, the next one sent as
/// each answer arrives. A batch touching a million users then never holds a million live actors at once.
/// </summary>
public sealed class DispatchWindow(IEnumerable<object> messages, int limit, Action<object> send)
{
    private readonly IEnumerator<object> _pending = messages.GetEnumerator();
    private bool _exhausted;

    public int Unanswered { get; private set; }

    /// <summary>Sends until the window is full or no message is left.</summary>
    public void Fill()
    {
        while (!_exhausted && Unanswered < limit)
        {
            if (!_pending.MoveNext())
            {
                _exhausted = true;
                _pending.Dispose();
                return;
            }

            Unanswered++;
            send(_pending.Current);
        }
    }

    /// <summary>Counts one answer and refills; true when every message has been answered.</summary>
    public bool Answered()
    {
        Unanswered--;
        Fill();
        return _exhausted && Unanswered == 0;
    }
}

using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Sessionization.Domain;

namespace Sessionization.Persistence.UserState;

/// <summary>
/// The binary form of a user's session state in the user state store: little-endian integers, 7-bit
/// lengths and UTF-8 strings (the layout of <see cref="BinaryWriter"/>). Encoding reuses one buffer per
/// thread and decoding reads straight from the stored bytes, because both run once per user per batch.
/// </summary>
public static class UserStateCodec
{
    [ThreadStatic]
    private static MemoryStream? t_buffer;

    [ThreadStatic]
    private static BinaryWriter? t_writer;

    public static byte[] Encode(UserSessionState state)
    {
        var w = EmptyWriter();
        w.Write(state.UserId);
        w.Write(state.LastAppliedBatch);
        WriteSession(w, state.Open);
        WriteSession(w, state.ClosedInLastBatch);
        return Bytes(w);
    }

    /// <summary>
    /// Decodes a state; with <paramref name="pages"/>, equal page names of different users become one string.
    /// </summary>
    public static UserSessionState Decode(ReadOnlySpan<byte> bytes, SharedStrings? pages = null)
    {
        var r = new Reader(bytes, pages);
        return new UserSessionState(r.Int64(), r.Int64(), ReadSession(ref r), ReadSession(ref r));
    }

    /// <summary>
    /// An event-time user's state: its sessions still open or still open to correction, each with the batch that
    /// wrote it (or none). Which of the two forms a store holds follows from the session mode recorded with its state.
    /// </summary>
    public static byte[] Encode(EventTimeUserState state) => EncodeToBuffer(state).ToArray();

    /// <summary>The state encoded into <paramref name="slab"/>: the form a batch keeps its users' states in.</summary>
    public static ReadOnlyMemory<byte> Encode(EventTimeUserState state, StateSlab slab) => slab.Add(EncodeToBuffer(state));

    /// <summary>The state encoded into this thread's buffer, valid until its next encoding.</summary>
    private static ReadOnlySpan<byte> EncodeToBuffer(EventTimeUserState state)
    {
        var w = EmptyWriter();
        w.Write(state.UserId);
        w.Write(state.LastAppliedBatch);
        w.Write7BitEncodedInt(state.Sessions.Length);
        foreach (var session in state.Sessions)
        {
            w.Write(session.WrittenIn ?? -1);
            w.Write7BitEncodedInt(session.Visits.Length);
            foreach (var v in session.Visits)
            {
                w.Write(v.TimeMicros);
                w.Write(v.Page);
            }
        }

        return Written(w);
    }

    /// <summary>This thread's writer, over its buffer emptied.</summary>
    private static BinaryWriter EmptyWriter()
    {
        var buffer = t_buffer ??= new MemoryStream(256);
        buffer.SetLength(0);
        return t_writer ??= new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true);
    }

    private static byte[] Bytes(BinaryWriter w) => Written(w).ToArray();

    /// <summary>What <paramref name="w"/> wrote into this thread's buffer, valid until its next encoding.</summary>
    private static ReadOnlySpan<byte> Written(BinaryWriter w)
    {
        w.Flush();
        return t_buffer!.GetBuffer().AsSpan(0, (int)t_buffer.Length);
    }

    public static EventTimeUserState DecodeEventTime(ReadOnlySpan<byte> bytes, SharedStrings? pages = null)
    {
        var r = new Reader(bytes, pages);
        var userId = r.Int64();
        var lastApplied = r.Int64();
        var sessions = new EventTimeSession[r.Int7()];
        for (var s = 0; s < sessions.Length; s++)
        {
            var writtenIn = r.Int64();
            var visits = new PageVisit[r.Int7()];
            if (visits.Length == 0)
                throw new InvalidDataException($"the stored state of user {userId} has a session without visits");
            for (var i = 0; i < visits.Length; i++)
                visits[i] = new PageVisit(r.Int64(), r.String());
            sessions[s] = new EventTimeSession(ImmutableCollectionsMarshal.AsImmutableArray(visits), writtenIn < 0 ? null : writtenIn);
        }

        if (!r.AtEnd)
            throw new InvalidDataException($"the stored state of user {userId} has bytes after its last session");
        return new EventTimeUserState(userId, lastApplied, ImmutableCollectionsMarshal.AsImmutableArray(sessions));
    }

    private static void WriteSession(BinaryWriter w, Session? session)
    {
        w.Write(session is not null);
        if (session is null)
            return;
        w.Write(session.UserId);
        w.Write(session.StartBatch);
        w.Write7BitEncodedInt(session.Visits.Count);
        foreach (var v in session.Visits)
        {
            w.Write(v.TimeMicros);
            w.Write(v.Page);
        }
    }

    private static Session? ReadSession(ref Reader r)
    {
        if (!r.Bool())
            return null;
        var userId = r.Int64();
        var startBatch = r.Int64();
        var visits = new PageVisit[r.Int7()];
        for (var i = 0; i < visits.Length; i++)
            visits[i] = new PageVisit(r.Int64(), r.String());
        return new Session(userId, startBatch, visits);
    }

    private ref struct Reader(ReadOnlySpan<byte> bytes, SharedStrings? pages)
    {
        private ReadOnlySpan<byte> _rest = bytes;

        public readonly bool AtEnd => _rest.IsEmpty;

        public long Int64()
        {
            var value = BinaryPrimitives.ReadInt64LittleEndian(_rest);
            _rest = _rest[8..];
            return value;
        }

        public bool Bool()
        {
            var value = _rest[0] != 0;
            _rest = _rest[1..];
            return value;
        }

        public int Int7()
        {
            int value = 0, shift = 0;
            byte b;
            do
            {
                if (shift > 28)
                    throw new InvalidDataException("a stored user state has a malformed length");
                b = _rest[0];
                _rest = _rest[1..];
                value |= (b & 0x7F) << shift;
                shift += 7;
            }
            while ((b & 0x80) != 0);
            return value;
        }

        public string String()
        {
            var length = Int7();
            var bytes = _rest[..length];
            _rest = _rest[length..];
            if (pages is null)
                return Encoding.UTF8.GetString(bytes);
            if (length > 256)
                return pages.Share(Encoding.UTF8.GetString(bytes));
            // Page names repeat: a short one is looked up from its characters, so a name seen before costs no new string.
            Span<char> chars = stackalloc char[length];
            return pages.Share(chars[..Encoding.UTF8.GetChars(bytes, chars)]);
        }
    }
}

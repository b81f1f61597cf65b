using System.Runtime.InteropServices;

namespace Sessionization.Persistence.UserState;

/// <summary>
/// The few SQLite calls a large save makes for every user's row, bound to the same native library SQLitePCLRaw loads,
/// taking the statement's handle as it is: through SQLitePCLRaw each call takes and releases a reference on the
/// statement's safe handle, millions of times a batch on the save's thread, which is the batch's critical path.
/// The caller keeps the statement (and its connection) alive while it uses the handle.
/// </summary>
internal static partial class SqliteNative
{
    private const string Library = "e_sqlite3";

    /// <summary>SQLite copies the value before the call returns (<c>SQLITE_TRANSIENT</c>).</summary>
    private static readonly IntPtr Transient = new(-1);

    public static int BindInt64(IntPtr statement, int index, long value) => sqlite3_bind_int64(statement, index, value);

    public static unsafe int BindBlob(IntPtr statement, int index, ReadOnlySpan<byte> value)
    {
        // An empty span pins to a null pointer, which SQLite would bind as NULL rather than as an empty blob.
        if (value.IsEmpty)
            return sqlite3_bind_zeroblob(statement, index, 0);
        fixed (byte* data = value)
            return sqlite3_bind_blob(statement, index, data, value.Length, Transient);
    }

    public static int Step(IntPtr statement) => sqlite3_step(statement);

    public static int Reset(IntPtr statement) => sqlite3_reset(statement);

    public static int Changes(IntPtr db) => sqlite3_changes(db);

    [LibraryImport(Library)]
    private static partial int sqlite3_bind_int64(IntPtr statement, int index, long value);

    [LibraryImport(Library)]
    private static unsafe partial int sqlite3_bind_blob(IntPtr statement, int index, byte* value, int length, IntPtr destructor);

    [LibraryImport(Library)]
    private static partial int sqlite3_bind_zeroblob(IntPtr statement, int index, int length);

    [LibraryImport(Library)]
    private static partial int sqlite3_step(IntPtr statement);

    [LibraryImport(Library)]
    private static partial int sqlite3_reset(IntPtr statement);

    [LibraryImport(Library)]
    private static partial int sqlite3_changes(IntPtr db);
}

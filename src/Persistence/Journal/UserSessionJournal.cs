using System.Collections.Immutable;
using Akka.Actor;
using Akka.Configuration;
using Akka.Persistence;
using Akka.Persistence.Journal;
using Microsoft.Data.Sqlite;

namespace Sessionization.Persistence.Journal;

/// <summary>
/// A lean journal for the per-user session actors: plain SQLite, one small table, every concurrent write
/// coalesced into one transaction (see <see cref="SqliteWriter"/>), and recovery reads straight off a pooled
/// connection. The actors still persist one event per batch and recover it as with any Akka.NET journal.
/// </summary>
public sealed class UserSessionJournal : AsyncWriteJournal
{
    private const string Schema = """
        CREATE TABLE IF NOT EXISTS events (pid TEXT NOT NULL, seq INTEGER NOT NULL, serializer INTEGER NOT NULL, manifest TEXT NOT NULL,
            payload BLOB NOT NULL, written INTEGER NOT NULL, PRIMARY KEY (pid, seq)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS deleted_to (pid TEXT NOT NULL PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
        """;

    private readonly SqliteWriter _writer;
    private readonly Akka.Serialization.Serialization _serialization;

    public UserSessionJournal(Config config)
    {
        _writer = new SqliteWriter(config.GetString("path"), Schema);
        _serialization = Context.System.Serialization;
    }

    protected override async Task<IImmutableList<Exception?>> WriteMessagesAsync(IEnumerable<AtomicWrite> messages, CancellationToken cancellationToken)
    {
        var results = new List<Exception?>();
        var rows = new List<(string Pid, long Seq, int Serializer, string Manifest, byte[] Payload, long Written)>();
        var now = DateTime.UtcNow.Ticks;
        foreach (var write in messages)
        {
            try
            {
                foreach (var p in (IImmutableList<IPersistentRepresentation>)write.Payload)
                {
                    var serializer = _serialization.FindSerializerFor(p.Payload);
                    rows.Add((p.PersistenceId, p.SequenceNr, serializer.Identifier, Akka.Serialization.Serialization.ManifestFor(serializer, p.Payload), serializer.ToBinary(p.Payload), now));
                }

                results.Add(null);
            }
            catch (Exception e)
            {
                // A payload that cannot be serialized rejects its own write only.
                results.Add(e);
            }
        }

        await _writer.WriteAsync((connection, transaction) =>
        {
            using var insert = connection.CreateCommand();
            insert.Transaction = transaction;
            insert.CommandText = "INSERT INTO events (pid, seq, serializer, manifest, payload, written) VALUES ($pid, $seq, $ser, $man, $pay, $at)";
            var pid = insert.Parameters.Add("$pid", SqliteType.Text);
            var seq = insert.Parameters.Add("$seq", SqliteType.Integer);
            var ser = insert.Parameters.Add("$ser", SqliteType.Integer);
            var man = insert.Parameters.Add("$man", SqliteType.Text);
            var pay = insert.Parameters.Add("$pay", SqliteType.Blob);
            var at = insert.Parameters.Add("$at", SqliteType.Integer);
            insert.Prepare();
            foreach (var row in rows)
            {
                (pid.Value, seq.Value, ser.Value, man.Value, pay.Value, at.Value) = (row.Pid, row.Seq, row.Serializer, row.Manifest, row.Payload, row.Written);
                insert.ExecuteNonQuery();
            }
        });
        return results.ToImmutableList();
    }

    protected override Task DeleteMessagesToAsync(string persistenceId, long toSequenceNr, CancellationToken cancellationToken) =>
        _writer.WriteAsync((connection, transaction) =>
        {
            // The highest sequence number must survive a delete, so it is kept beside the events.
            using var command = connection.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = """
                INSERT INTO deleted_to (pid, seq) VALUES ($pid, min($to, coalesce((SELECT max(seq) FROM events WHERE pid = $pid), 0)))
                    ON CONFLICT (pid) DO UPDATE SET seq = max(seq, excluded.seq);
                DELETE FROM events WHERE pid = $pid AND seq <= $to;
                """;
            command.Parameters.AddWithValue("$pid", persistenceId);
            command.Parameters.AddWithValue("$to", toSequenceNr);
            command.ExecuteNonQuery();
        });

    public override Task ReplayMessagesAsync(IActorContext context, string persistenceId, long fromSequenceNr, long toSequenceNr, long max, Action<IPersistentRepresentation> recoveryCallback)
    {
        using var connection = _writer.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT seq, serializer, manifest, payload, written FROM events WHERE pid = $pid AND seq >= $from AND seq <= $to ORDER BY seq LIMIT $max";
        command.Parameters.AddWithValue("$pid", persistenceId);
        command.Parameters.AddWithValue("$from", fromSequenceNr);
        command.Parameters.AddWithValue("$to", toSequenceNr);
        command.Parameters.AddWithValue("$max", Math.Min(max, long.MaxValue));
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            var payload = _serialization.Deserialize((byte[])reader.GetValue(3), reader.GetInt32(1), reader.GetString(2));
            recoveryCallback(new Persistent(payload, reader.GetInt64(0), persistenceId, reader.GetString(2), false, ActorRefs.NoSender, null, reader.GetInt64(4)));
        }

        return Task.CompletedTask;
    }

    public override Task<long> ReadHighestSequenceNrAsync(string persistenceId, long fromSequenceNr, CancellationToken cancellationToken)
    {
        using var connection = _writer.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT max(coalesce((SELECT max(seq) FROM events WHERE pid = $pid), 0), coalesce((SELECT seq FROM deleted_to WHERE pid = $pid), 0))";
        command.Parameters.AddWithValue("$pid", persistenceId);
        return Task.FromResult(Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture));
    }

    protected override void PostStop()
    {
        _writer.Dispose();
        base.PostStop();
    }
}

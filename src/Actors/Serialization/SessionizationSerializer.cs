using Akka.Actor;
using Akka.Serialization;
using Sessionization.Domain;

namespace Sessionization.Actors.Serialization;

/// <summary>
/// Compact binary encoding of the coordinator's journal and snapshots (user session states have their own,
/// <see cref="UserStateCodec"/>). Manifests are short
/// fixed strings, never CLR type names, so types can move or be renamed without breaking stored data.
/// </summary>
public sealed class SessionizationSerializer(ExtendedActorSystem system) : SerializerWithStringManifest(system)
{
    private const string BatchPlannedManifest = "BP";
    private const string BatchCommittedManifest = "BC";
    private const string CoordinatorStateManifest = "CS";
    private const string RewindStartedManifest = "RS";
    private const string RewindCompletedManifest = "RC";

    public override int Identifier => 4711;

    public override string Manifest(object o) => o switch
    {
        BatchPlanned => BatchPlannedManifest,
        BatchCommitted => BatchCommittedManifest,
        CoordinatorState => CoordinatorStateManifest,
        RewindStarted => RewindStartedManifest,
        RewindCompleted => RewindCompletedManifest,
        _ => throw new ArgumentException($"{o.GetType()} is not a persisted sessionization record"),
    };

    public override byte[] ToBinary(object obj)
    {
        using var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
            Write(w, obj);
        return buffer.ToArray();
    }

    public override object FromBinary(byte[] bytes, string manifest)
    {
        using var r = new BinaryReader(new MemoryStream(bytes), System.Text.Encoding.UTF8);
        return manifest switch
        {
            RewindStartedManifest => new RewindStarted(r.ReadInt64()),
            RewindCompletedManifest => new RewindCompleted(r.ReadInt64()),
            BatchPlannedManifest => ReadPlanned(r),
            BatchCommittedManifest => new BatchCommitted(r.ReadInt64(), ReadCursor(r), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), ReadOptionalTail(r), ReadOptionalTail(r)),
            CoordinatorStateManifest => ReadState(r),
            _ => throw new System.Runtime.Serialization.SerializationException($"unknown manifest '{manifest}'"),
        };
    }

    private static void Write(BinaryWriter w, object obj)
    {
        switch (obj)
        {
            case RewindStarted e:
                w.Write(e.Batch);
                break;
            case RewindCompleted e:
                w.Write(e.Batch);
                break;
            case BatchPlanned e:
                WritePlan(w, e.Plan);
                // Added after the first format, as every tail below: older records end before it.
                WritePlanExtras(w, e.Plan);
                WriteOptional(w, e.SessionRules);
                break;
            case BatchCommitted e:
                w.Write(e.Batch);
                WriteCursor(w, e.Cursor);
                w.Write(e.Visits);
                w.Write(e.Pending);
                w.Write(e.Completed);
                WriteOptional(w, e.LatestVisitMicros);
                WriteOptional(w, e.WatermarkMicros);
                break;
            case CoordinatorState s:
                w.Write(s.NextBatch);
                WriteCursor(w, s.Cursor);
                w.Write(s.InFlight is not null);
                if (s.InFlight is not null)
                    WritePlan(w, s.InFlight);
                w.Write(s.RewindingTo is not null);
                if (s.RewindingTo is { } rewinding)
                    w.Write(rewinding);
                w.Write7BitEncodedInt(s.Checkpoints.Count);
                foreach (var c in s.Checkpoints)
                {
                    w.Write(c.Batch);
                    WriteCursor(w, c.From);
                    WriteCursor(w, c.To);
                    w.Write(c.Summary.Batch);
                    w.Write(c.Summary.LastVersion);
                    w.Write(c.Summary.Visits);
                    w.Write(c.Summary.Pending);
                    w.Write(c.Summary.Completed);
                    w.Write(c.CommitSequenceNr);
                }

                // Added after the first format: a snapshot without it reads as "not recorded".
                WriteOptional(w, s.LatestVisitMicros);
                foreach (var c in s.Checkpoints)
                    WriteOptional(w, c.LatestVisitBefore);
                WriteOptional(w, s.WatermarkMicros);
                foreach (var c in s.Checkpoints)
                    WriteOptional(w, c.WatermarkBefore);
                WriteOptional(w, s.SessionRules);
                if (s.InFlight is not null)
                    WritePlanExtras(w, s.InFlight);
                // Added after the event-time fields: the sessions open now and before each checkpoint's batch.
                WriteOptional(w, s.Open);
                foreach (var c in s.Checkpoints)
                    WriteOptional(w, c.OpenBefore);
                break;
            default:
                throw new ArgumentException($"{obj.GetType()} is not a persisted sessionization record");
        }
    }

    private static void WriteOptional(BinaryWriter w, long? value)
    {
        w.Write(value is not null);
        if (value is { } v)
            w.Write(v);
    }

    private static void WriteOptional(BinaryWriter w, string? value)
    {
        w.Write(value is not null);
        if (value is not null)
            w.Write(value);
    }

    private static long? ReadOptional(BinaryReader r) => r.ReadBoolean() ? r.ReadInt64() : null;

    private static string? ReadOptionalString(BinaryReader r) => r.ReadBoolean() ? r.ReadString() : null;

    private static bool AtEnd(BinaryReader r) => r.BaseStream.Position >= r.BaseStream.Length;

    private static void WritePlanExtras(BinaryWriter w, BatchPlan plan)
    {
        w.Write(plan.EndOfInput);
        WriteOptional(w, plan.WatermarkAtLeast);
    }

    private static BatchPlan ReadPlanExtras(BinaryReader r, BatchPlan plan) =>
        plan with { EndOfInput = r.ReadBoolean(), WatermarkAtLeast = ReadOptional(r) };

    private static BatchPlanned ReadPlanned(BinaryReader r)
    {
        var plan = ReadPlan(r);
        if (AtEnd(r))
            return new BatchPlanned(plan);
        plan = ReadPlanExtras(r, plan);
        return new BatchPlanned(plan, ReadOptionalString(r));
    }

    /// <summary>A field added at the end of a record: records written before it have nothing there.</summary>
    private static long? ReadOptionalTail(BinaryReader r) => AtEnd(r) ? null : ReadOptional(r);

    private static CoordinatorState ReadState(BinaryReader r)
    {
        var state = new CoordinatorState(r.ReadInt64(), ReadCursor(r), r.ReadBoolean() ? ReadPlan(r) : null, r.ReadBoolean() ? r.ReadInt64() : null, ReadCheckpoints(r));
        if (AtEnd(r))
            return state;
        var latest = ReadOptional(r);
        var checkpoints = state.Checkpoints.Select(c => c with { LatestVisitBefore = ReadOptional(r) }).ToList();
        state = state with { LatestVisitMicros = latest, Checkpoints = checkpoints };
        if (AtEnd(r))
            return state;
        var watermark = ReadOptional(r);
        checkpoints = checkpoints.Select(c => c with { WatermarkBefore = ReadOptional(r) }).ToList();
        var rules = ReadOptionalString(r);
        var inFlight = state.InFlight is { } plan ? ReadPlanExtras(r, plan) : null;
        state = state with { WatermarkMicros = watermark, Checkpoints = checkpoints, SessionRules = rules, InFlight = inFlight };
        if (AtEnd(r))
            return state with { Open = null };
        var open = ReadOptional(r);
        return state with { Open = open, Checkpoints = [.. checkpoints.Select(c => c with { OpenBefore = ReadOptional(r) })] };
    }

    private static void WriteCursor(BinaryWriter w, SourceCursor c)
    {
        w.Write(c.Version);
        w.Write(c.FileIndex);
    }

    private static SourceCursor ReadCursor(BinaryReader r) => new(r.ReadInt64(), r.ReadInt32());

    private static void WritePlan(BinaryWriter w, BatchPlan plan)
    {
        w.Write(plan.Batch);
        WriteCursor(w, plan.From);
        WriteCursor(w, plan.To);
        w.Write7BitEncodedInt(plan.Files.Count);
        foreach (var f in plan.Files)
        {
            w.Write(f.Version);
            w.Write(f.Index);
            w.Write(f.Path);
            w.Write(f.Size);
        }
    }

    private static BatchPlan ReadPlan(BinaryReader r)
    {
        var batch = r.ReadInt64();
        var from = ReadCursor(r);
        var to = ReadCursor(r);
        var files = new SourceFile[r.Read7BitEncodedInt()];
        for (var i = 0; i < files.Length; i++)
            files[i] = new SourceFile(r.ReadInt64(), r.ReadInt32(), r.ReadString(), r.ReadInt64());
        return new BatchPlan(batch, from, to, files);
    }

    private static CommittedBatch ReadCommitted(BinaryReader r) =>
        new(r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64());

    private static Checkpoint[] ReadCheckpoints(BinaryReader r)
    {
        var checkpoints = new Checkpoint[r.Read7BitEncodedInt()];
        for (var i = 0; i < checkpoints.Length; i++)
            checkpoints[i] = new Checkpoint(r.ReadInt64(), ReadCursor(r), ReadCursor(r), ReadCommitted(r), r.ReadInt64());
        return checkpoints;
    }
}

using System.Diagnostics.Metrics;

namespace Sessionization.Persistence;

/// <summary>
/// The sessionizer's instruments, on one <see cref="Meter"/> named <see cref="MeterName"/>. Counters and histograms are
/// recorded where the work happens; the gauges read the last values the batch coordinator published, so a scrape
/// costs no I/O beyond measuring the state directory.
/// </summary>
public static class SessionizationMetrics
{
    public const string MeterName = "Sessionization";

    private static readonly Meter Meter = new(MeterName, "1.0");

    // Batches take from milliseconds (a worker's small commits) to minutes (a backlog caught up in one batch).
    private static readonly double[] SecondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
    private static readonly long[] CountBuckets = [0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

    private static Gauges _gauges = Gauges.Unknown;
    private static Func<long?> _stateSize = () => null;

    public static Counter<long> BatchesCommitted { get; } = Meter.CreateCounter<long>(
        "sessionization.batches.committed", "{batch}", "Batches whose output and checkpoint are committed");

    public static Counter<long> BatchesFailed { get; } = Meter.CreateCounter<long>(
        "sessionization.batches.failed", "{batch}", "Batch attempts that failed (each is tried again after its backoff)");

    public static Counter<long> FilesCompacted { get; } = Meter.CreateCounter<long>(
        "sessionization.files.compacted", "{file}", "Session table files a worker's own compactions joined into larger ones");

    public static Counter<long> VisitsProcessed { get; } = Meter.CreateCounter<long>(
        "sessionization.visits.processed", "{visit}", "Visits in committed batches");

    public static Histogram<long> BatchVisits { get; } = Meter.CreateHistogram(
        "sessionization.batch.visits", "{visit}", "Visits per committed batch", advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = CountBuckets });

    public static Histogram<long> BatchUsers { get; } = Meter.CreateHistogram(
        "sessionization.batch.users", "{user}", "Users with visits per committed batch", advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = CountBuckets });

    public static Histogram<double> BatchDuration { get; } = Meter.CreateHistogram(
        "sessionization.batch.duration", "s", "Time from a batch's plan to its commit", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

    public static Histogram<double> StoreFlushDuration { get; } = Meter.CreateHistogram(
        "sessionization.store.flush.duration", "s", "Time a batch waits for its user states to be durable", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

    public static Histogram<double> StateLogApplyDuration { get; } = Meter.CreateHistogram(
        "sessionization.store.log_apply.duration", "s", "Time the event-time state store takes to write its log into its users table, after a batch",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

    static SessionizationMetrics()
    {
        Meter.CreateObservableGauge("sessionization.lag.versions", () => Observe(g => g.VersionsBehind), "{version}", "Visits-table versions committed and not yet in a committed batch");
        Meter.CreateObservableGauge("sessionization.lag.visits", () => Observe(g => g.VisitsBehind), "{visit}", "Visits committed to the visits table and not yet in a committed batch");
        Meter.CreateObservableGauge(
            "sessionization.lag.seconds",
            () => Observe<double>(g => g.OldestUnprocessedCommit is { } oldest ? Math.Max(0, (DateTimeOffset.UtcNow - oldest).TotalSeconds) : g.VersionsBehind is null ? null : 0.0),
            "s",
            "Age of the oldest visits-table commit not yet in a committed batch (0 when none)");
        Meter.CreateObservableGauge("sessionization.sessions.open", () => Observe(g => g.OpenSessions), "{session}", "Sessions pending after the last committed batch");
        Meter.CreateObservableGauge("sessionization.backoff.failures", () => Observe(g => (long?)g.FailuresInARow), "{failure}", "Failed batch attempts since the last commit");
        Meter.CreateObservableGauge(
            "sessionization.backoff.seconds",
            () => Observe<double>(g => g.RetryAt is { } at ? Math.Max(0, (at - DateTimeOffset.UtcNow).TotalSeconds) : 0.0),
            "s",
            "Time left before the next attempt after a failure (0 when not backing off)");
        Meter.CreateObservableGauge("sessionization.state.size", () => Observe(_ => _stateSize()), "By", "Bytes the state files take on disk (SQLite only)");
    }

    /// <summary>What the coordinator last published; a field it does not know yet is null and is not exported.</summary>
    public sealed record Gauges(long? VersionsBehind, long? VisitsBehind, DateTimeOffset? OldestUnprocessedCommit, long? OpenSessions, int FailuresInARow, DateTimeOffset? RetryAt)
    {
        public static Gauges Unknown { get; } = new(null, null, null, null, 0, null);
    }

    public static Gauges Current => Volatile.Read(ref _gauges);

    /// <summary>Replaces the gauges' values with what <paramref name="update"/> makes of them.</summary>
    public static void Publish(Func<Gauges, Gauges> update)
    {
        Gauges seen, next;
        do
        {
            seen = Volatile.Read(ref _gauges);
            next = update(seen);
        }
        while (!ReferenceEquals(Interlocked.CompareExchange(ref _gauges, next, seen), seen));
    }

    /// <summary>How the state size gauge measures the state; a store it cannot measure answers null.</summary>
    public static void MeasureStateWith(Func<long?> measure) => _stateSize = measure;

    private static IEnumerable<Measurement<T>> Observe<T>(Func<Gauges, T?> read)
        where T : struct
    {
        if (read(Current) is { } value)
            yield return new Measurement<T>(value);
    }
}

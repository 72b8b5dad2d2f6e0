/// A worker's training speed: the steps it reported over its last ~30 seconds of heartbeats, per second.
///
/// Cheap to feed from every heartbeat: it keeps the latest report and a few anchors at least ``spacing`` apart
/// (at most `window / spacing + 1` of them), so recording is a comparison and, now and then, an append.
public struct StepRate: Sendable, Hashable {
    /// How far back the rate looks: the oldest anchor kept is the newest one at least this old.
    public static let window: Duration = .seconds(30)
    /// Anchors are at least this far apart.
    public static let spacing: Duration = .seconds(2)
    /// A rate over less time than this is noise: none is given.
    public static let shortestSpan: Duration = .seconds(1)

    struct Sample: Sendable, Hashable {
        var at: Duration
        var step: Int64
    }

    /// Oldest first; the first is the newest sample at least ``window`` older than the latest (or the oldest one).
    private var anchors: [Sample] = []
    private var latest: Sample?
    /// Whether the step ever changed since the first report (or since it went back): a worker that never reports a
    /// step (the SDK sends 0) has no rate, as opposed to a rate of 0 for one that stopped making progress.
    private var progressed = false

    /// No reports yet.
    public init() {}

    /// A heartbeat reported `step` at monotonic time `now`. A step lower than the previous one (a job resumed from
    /// an earlier checkpoint) starts the measurement over.
    public mutating func record(step: Int64, at now: Duration) {
        if let latest, step < latest.step {
            anchors = []
            self.latest = nil
            progressed = false
        }
        if let first = anchors.first, first.step != step { progressed = true }
        let sample = Sample(at: now, step: step)
        latest = sample
        if anchors.last.map({ now - $0.at >= Self.spacing }) ?? true { anchors.append(sample) }
        while anchors.count >= 2, now - anchors[1].at >= Self.window { anchors.removeFirst() }
    }

    /// Steps per second from the oldest anchor to the latest report; nil until the worker's step has changed at
    /// least once and reports span ``shortestSpan``.
    public var perSecond: Double? {
        guard progressed, let latest, let first = anchors.first else { return nil }
        let span = latest.at - first.at
        guard span >= Self.shortestSpan else { return nil }
        return Double(latest.step - first.step) / span.seconds
    }
}

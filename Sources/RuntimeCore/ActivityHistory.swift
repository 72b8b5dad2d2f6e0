/// The coordinator's recent activity for the dashboard's sparklines (`GET /api/metrics`' `history`): one point every
/// ``interval`` with the heartbeat rate, the summed step rate of the members and the number of members, for the last
/// ``capacity`` intervals (10 minutes).
public struct ActivityHistory: Sendable {
    /// One point.
    public struct Point: Sendable, Hashable {
        /// Wall-clock time of the point, Unix milliseconds.
        public var atMillis: Int64
        /// Heartbeats received per second since the previous point.
        public var heartbeatsPerSecond: Double
        /// The members' step rates, summed.
        public var stepsPerSecond: Double
        /// Members (healthy or suspect) of every task.
        public var workers: Int

        /// Creates a point.
        public init(atMillis: Int64, heartbeatsPerSecond: Double, stepsPerSecond: Double, workers: Int) {
            self.atMillis = atMillis
            self.heartbeatsPerSecond = heartbeatsPerSecond
            self.stepsPerSecond = stepsPerSecond
            self.workers = workers
        }
    }

    /// Time between points.
    public static let interval: Duration = .seconds(5)
    /// Points kept: 10 minutes.
    public static let capacity = 120

    /// Oldest first.
    public private(set) var points: [Point] = []
    private var previous: (at: Duration, heartbeats: Int)?

    /// No points yet.
    public init() {}

    /// Whether a point is due at monotonic time `now` (the first call only sets the baseline).
    public func isDue(at now: Duration) -> Bool {
        previous.map { now - $0.at >= Self.interval } ?? true
    }

    /// Takes a point if one is due: `heartbeatsTotal` counts every heartbeat since start-up.
    public mutating func sample(
        at now: Moment, heartbeatsTotal: Int, stepsPerSecond: Double, workers: Int
    ) {
        guard isDue(at: now.monotonic) else { return }
        defer { previous = (now.monotonic, heartbeatsTotal) }
        guard let previous else { return }
        let elapsed = (now.monotonic - previous.at).seconds
        points.append(
            Point(
                atMillis: now.unixMillis, heartbeatsPerSecond: Double(heartbeatsTotal - previous.heartbeats) / elapsed,
                stepsPerSecond: stepsPerSecond, workers: workers))
        if points.count > Self.capacity { points.removeFirst(points.count - Self.capacity) }
    }
}

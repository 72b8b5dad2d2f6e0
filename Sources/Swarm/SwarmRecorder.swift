import Synchronization

/// What a swarm observed, shared by its workers: heartbeat round trips, pushes, errors, and what the scenarios count.
///
/// Round trips are kept whole (8 bytes each: 10,000 workers × 1 Hz × 30 s is 2.4 MB), so percentiles are exact.
public final class SwarmRecorder: Sendable {
    /// A view a worker received, as scenarios see it.
    public struct Received: Sendable {
        /// The worker.
        public var worker: String
        /// When it arrived.
        public var at: ContinuousClock.Instant
        /// An acknowledgement of a heartbeat, a push, or a unary reply (registration, heartbeat).
        public var kind: Kind
        /// Its rank (-1: not a member).
        public var rank: Int32
        /// Its task's world size.
        public var worldSize: Int32
        /// Its task's membership epoch.
        public var epoch: UInt64
        /// Why it was pushed (empty for acknowledgements).
        public var reason: String
    }

    /// How a view arrived.
    public enum Kind: Sendable, Hashable {
        /// The acknowledgement of a heartbeat on a session stream.
        case ack
        /// Pushed on a session stream.
        case push
        /// The reply of a unary call.
        case reply
    }

    private struct State {
        var roundTrips: [Int64] = []
        var counts: [String: Int] = [:]
        var errors: [String: Int] = [:]
        var firstErrors: [String] = []
    }

    private let state = Mutex(State())
    private let onView: (@Sendable (Received) -> Void)?

    /// A recorder; `onView` sees every view any worker receives (on the thread that received it: keep it short).
    public init(onView: (@Sendable (Received) -> Void)? = nil) {
        self.onView = onView
    }

    // MARK: Recording

    /// A heartbeat's round trip on a session stream (sent to acknowledged).
    public func roundTrip(_ duration: Duration) {
        let nanoseconds = Percentiles.nanoseconds(duration)
        state.withLock { $0.roundTrips.append(nanoseconds) }
    }

    /// A view reached a worker.
    func received(_ view: Received) {
        onView?(view)
    }

    /// Adds `amount` to the counter `name`.
    public func count(_ name: String, _ amount: Int = 1) {
        state.withLock { $0.counts[name, default: 0] += amount }
    }

    /// A call that failed for good (after its retries), as `what` (e.g. `RegisterWorker: unavailable`); the first few
    /// messages are kept for the report.
    public func error(_ what: String, message: String) {
        state.withLock { state in
            state.errors[what, default: 0] += 1
            if state.firstErrors.count < 5 { state.firstErrors.append("\(what): \(message)") }
        }
    }

    // MARK: Reading

    /// The round trips recorded so far, in nanoseconds, and forgets them (one measurement window).
    public func takeRoundTrips() -> [Int64] {
        state.withLock { state in
            defer { state.roundTrips = [] }
            return state.roundTrips
        }
    }

    /// The counter `name`.
    public func counted(_ name: String) -> Int { state.withLock { $0.counts[name] ?? 0 } }

    /// Every counter.
    public var counts: [String: Int] { state.withLock { $0.counts } }

    /// Errors by kind.
    public var errors: [String: Int] { state.withLock { $0.errors } }

    /// The number of errors.
    public var errorCount: Int { state.withLock { $0.errors.values.reduce(0, +) } }

    /// The first few error messages.
    public var firstErrors: [String] { state.withLock { $0.firstErrors } }
}

/// Percentiles of a set of samples (nearest rank).
public struct Percentiles: Sendable {
    private let sorted: [Int64]

    /// Sorts `nanoseconds` once.
    public init(nanoseconds: [Int64]) {
        sorted = nanoseconds.sorted()
    }

    /// Sorts `durations` once.
    public init(_ durations: [Duration]) {
        self.init(nanoseconds: durations.map(Self.nanoseconds))
    }

    /// A duration in whole nanoseconds.
    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// How many samples there are.
    public var count: Int { sorted.count }

    /// The `quantile` sample in milliseconds (0 without samples).
    public func milliseconds(_ quantile: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = min(sorted.count - 1, max(0, Int((quantile * Double(sorted.count)).rounded(.up)) - 1))
        return Double(sorted[rank]) / 1e6
    }

    /// The largest sample in milliseconds (0 without samples).
    public var maxMilliseconds: Double { Double(sorted.last ?? 0) / 1e6 }

    /// How many samples are longer than `milliseconds`.
    public func count(over milliseconds: Double) -> Int {
        let bound = Int64(milliseconds * 1e6)
        var low = 0
        var high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle] > bound { high = middle } else { low = middle + 1 }
        }
        return sorted.count - low
    }
}

/// Tells a follower when the coordinator it polls has restarted, so that it follows the new log from its start: log
/// sequence numbers count from 1 again after a restart, and the entries numbered up to the last one seen would be
/// missed.
///
/// Each answer of `GET /api/health` gives the coordinator's uptime, measured on its monotonic clock at some moment
/// between the request's sending and its answer's arrival. So the coordinator started within that window, shifted back
/// by the uptime. Two observations of the same coordinator give windows that overlap; a coordinator that restarted
/// started later than the old one by at least the old one's lifetime, so its window lies after the old one's once that
/// lifetime is longer than the round trips. This machine's time is read only from a monotonic clock, and only
/// consecutive observations are compared, so the clocks' rates drifting apart over hours does not matter.
struct RestartWatch {
    /// Rounding of the uptime and of clock readings.
    static let slack = Duration.milliseconds(1)

    /// When the coordinator started, according to the last observation.
    private var start: ClosedRange<ContinuousClock.Instant>?

    /// A watch with no observation yet.
    init() {}

    /// Records an answer: a request sent at `sent` and answered at `received` said `uptime` seconds (nil when the
    /// coordinator did not say). Returns whether the coordinator restarted since the previous observation.
    mutating func restarted(uptime: Double?, sent: ContinuousClock.Instant, received: ContinuousClock.Instant) -> Bool {
        guard let uptime, uptime.isFinite, uptime >= 0, sent <= received else { return false }
        let up = Duration.seconds(uptime)
        let window = (sent - up - Self.slack)...(received - up + Self.slack)
        defer { start = window }
        guard let start else { return false }
        return !window.overlaps(start)
    }
}

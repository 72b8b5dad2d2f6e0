import RuntimeCore
import Synchronization

/// Per-client rate limits of one protocol, shared by its requests: a ``RateLimiter`` behind a lock, on the
/// coordinator's monotonic clock.
public final class ClientRateLimits: Sendable {
    /// Requests per second per client.
    public let rate: Double
    private let limiter: Mutex<RateLimiter>
    private let now: @Sendable () -> Duration

    /// Limits of `rate` per second per client, with bursts of twice that, on the monotonic clock `now` (the engine's,
    /// so that tests can drive it by hand).
    public init(rate: Double, now: @escaping @Sendable () -> Duration) {
        self.rate = rate
        self.now = now
        limiter = Mutex(RateLimiter(rate: rate, burst: max(1, 2 * rate)))
    }

    /// nil when `client` may go on, else the refusal to answer with: `RATE_LIMITED`, with how long to wait.
    ///
    /// - Parameter advice: what the client exceeded, for the message (`"requests per second"`, and the flag).
    func admit(_ client: String, unit: String, flag: String) -> CoreError? {
        let moment = now()
        guard let wait = limiter.withLock({ $0.admit(client, now: moment) }) else { return nil }
        return CoreError(
            .resourceExhausted,
            "rate limit: more than \(Int(rate)) \(unit) per second from \(client); retry in "
                + "\(Int(Self.roundedUp(wait, to: .milliseconds(1)) / .milliseconds(1))) ms (the coordinator's \(flag))",
            reason: .rateLimited, details: ErrorDetails(retryAfter: wait))
    }

    /// `duration` rounded up to a whole number of `unit`s.
    static func roundedUp(_ duration: Duration, to unit: Duration) -> Duration {
        let units = (duration / unit).rounded(.up)
        return unit * units
    }
}

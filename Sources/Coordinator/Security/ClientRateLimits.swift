import RuntimeCore
import Synchronization

/// Per-client rate limits of one protocol, shared by its requests: a ``RateLimiter`` behind a lock, on the monotonic
/// clock.
public final class ClientRateLimits: Sendable {
    /// Requests per second per client.
    public let rate: Double
    private let limiter: Mutex<RateLimiter>
    private let origin = ContinuousClock.now

    /// Limits of `rate` per second per client, with bursts of twice that.
    public init(rate: Double) {
        self.rate = rate
        limiter = Mutex(RateLimiter(rate: rate, burst: max(1, 2 * rate)))
    }

    /// nil when `client` may go on, else how long it should wait.
    public func admit(_ client: String) -> Duration? {
        let now = ContinuousClock.now - origin
        return limiter.withLock { $0.admit(client, now: now) }
    }
}

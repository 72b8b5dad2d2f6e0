/// A token bucket: `burst` tokens, refilled at `rate` per second. Pure: time comes in as a monotonic instant.
public struct TokenBucket: Sendable, Hashable {
    /// Tokens refilled per second.
    public let rate: Double
    /// Most tokens it holds (the burst a client may send at once).
    public let burst: Double
    private var tokens: Double
    private var updated: Duration

    /// A full bucket at `now`.
    public init(rate: Double, burst: Double, now: Duration) {
        self.rate = rate
        self.burst = max(1, burst)
        tokens = self.burst
        updated = now
    }

    /// Takes one token if there is one; otherwise says how long until there is.
    public mutating func take(now: Duration) -> (allowed: Bool, retryAfter: Duration) {
        refill(now)
        if tokens >= 1 {
            tokens -= 1
            return (true, .zero)
        }
        return (false, .seconds((1 - tokens) / rate))
    }

    /// Whether the bucket is full at `now` (an idle client: its bucket can be forgotten).
    public mutating func isFull(now: Duration) -> Bool {
        refill(now)
        return tokens >= burst
    }

    private mutating func refill(_ now: Duration) {
        guard now > updated else { return }
        tokens = min(burst, tokens + (now - updated).seconds * rate)
        updated = now
    }
}

/// A token bucket per client key (an IP address), with a bounded number of buckets: when full, idle clients' buckets
/// (full again) are forgotten first; if every tracked client is busy, new clients share one overflow bucket.
public struct RateLimiter: Sendable {
    /// Requests per second per client.
    public let rate: Double
    /// Burst per client.
    public let burst: Double
    /// Most clients tracked at once.
    public let maxClients: Int
    private var buckets: [String: TokenBucket] = [:]
    private var overflow: TokenBucket?

    /// A limiter of `rate` per second with bursts of `burst`, per client.
    public init(rate: Double, burst: Double, maxClients: Int = 10_000) {
        self.rate = rate
        self.burst = burst
        self.maxClients = maxClients
    }

    /// Takes a token for `client`: nil when allowed, else how long it should wait.
    public mutating func admit(_ client: String, now: Duration) -> Duration? {
        if buckets[client] == nil, buckets.count >= maxClients {
            buckets = buckets.filter { _, bucket in
                var bucket = bucket
                return !bucket.isFull(now: now)
            }
        }
        guard buckets[client] != nil || buckets.count < maxClients else {
            var shared = overflow ?? TokenBucket(rate: rate, burst: burst, now: now)
            let (allowed, wait) = shared.take(now: now)
            overflow = shared
            return allowed ? nil : wait
        }
        var bucket = buckets[client] ?? TokenBucket(rate: rate, burst: burst, now: now)
        let (allowed, wait) = bucket.take(now: now)
        buckets[client] = bucket
        return allowed ? nil : wait
    }
}

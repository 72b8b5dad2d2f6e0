/// The Python SDK's reconnection backoff (`dtruntime.worker._Backoff`): waits from 50 ms, doubling up to a second,
/// each within ±20 % (so that workers that failed together do not come back together), and from 50 ms again once the
/// coordinator answered.
public struct Backoff: Sendable {
    /// The first wait (before its jitter).
    public static let initial = Duration.milliseconds(50)
    /// The longest wait (before its jitter).
    public static let maximum = Duration.seconds(1)

    private var current = Backoff.initial

    /// A backoff at its first wait.
    public init() {}

    /// The next wait: the current one times `jitter` (at random within 0.8...1.2); the one after is twice as long, at
    /// most ``maximum``.
    public mutating func next(jitter: Double = Double.random(in: 0.8...1.2)) -> Duration {
        defer { current = min(current * 2, Self.maximum) }
        return current * jitter
    }

    /// Back to the first wait (the coordinator answered).
    public mutating func reset() {
        current = Self.initial
    }
}

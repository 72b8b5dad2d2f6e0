/// A point in time as the pure core sees it: a monotonic reading for timeouts and a wall-clock reading for records.
///
/// The core never reads a clock: the shell passes a `Moment` into every event, and tests drive a manual one.
public struct Moment: Sendable, Hashable {
    /// Time since an arbitrary fixed origin (the shell's start). Only differences are meaningful; it never jumps.
    public var monotonic: Duration
    /// Milliseconds since the Unix epoch, for what people read (registration times). May jump; never used for timeouts.
    public var unixMillis: Int64

    /// Creates a moment from both readings.
    public init(monotonic: Duration, unixMillis: Int64) {
        self.monotonic = monotonic
        self.unixMillis = unixMillis
    }

    /// The moment `duration` later on both clocks.
    public func advanced(by duration: Duration) -> Moment {
        Moment(monotonic: monotonic + duration, unixMillis: unixMillis + duration.milliseconds)
    }
}

extension Duration {
    /// The duration in whole milliseconds (truncated).
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The duration in seconds as a double, for JSON and logs.
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

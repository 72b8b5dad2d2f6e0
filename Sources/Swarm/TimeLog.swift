/// The latest instants of something that happens (``monotonicNanoseconds()``), at most `capacity` of them, in time
/// order: each is read when it is noted, under the lock of whoever holds the log.
public struct TimeLog: Sendable {
    private var instants: ArraySlice<Int64> = []
    private let capacity: Int

    /// An empty log that keeps the latest `capacity` instants.
    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Notes now; the oldest instant goes once there are more than `capacity`.
    public mutating func noteNow() {
        instants.append(monotonicNanoseconds())
        if instants.count > capacity { instants.removeFirst(instants.count - capacity) }
    }

    /// The instants kept, oldest first.
    public var times: [Int64] { Array(instants) }
}

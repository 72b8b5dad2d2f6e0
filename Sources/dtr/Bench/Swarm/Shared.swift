import Synchronization

/// A value behind a lock that closures running on other tasks can share (a `Mutex` on its own cannot be captured by
/// an escaping closure: it is not copyable).
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    /// Runs `body` with the value locked.
    func withLock<Result>(_ body: (inout sending Value) -> sending Result) -> sending Result {
        mutex.withLock(body)
    }

    /// A copy of the value.
    var value: Value { mutex.withLock { $0 } }
}

/// Counters that closures running on other tasks can share.
final class SharedCounter: Sendable {
    private let atomic = Atomic<Int>(0)

    init() {}

    /// Adds `amount`.
    func add(_ amount: Int) {
        atomic.add(amount, ordering: .relaxed)
    }

    /// The current count.
    var value: Int { atomic.load(ordering: .relaxed) }
}

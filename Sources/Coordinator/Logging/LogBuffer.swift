public import Foundation
public import Logging
import Synchronization

/// One log entry as `/api/logs` serves it.
public struct LogEntry: Sendable, Hashable {
    /// A sequence number, counting from 1 since the coordinator started.
    public var sequence: UInt64
    /// When it was logged.
    public var timestamp: Date
    /// Its level.
    public var level: Logger.Level
    /// The logger's label.
    public var label: String
    /// The message.
    public var message: String
    /// Its metadata, rendered as strings (worker_id, task_id, rpc, ...).
    public var metadata: [String: String]
}

/// The most recent log entries, in memory: a bounded ring, so a chatty coordinator never grows without bound.
public final class LogBuffer: Sendable {
    /// How many entries are kept.
    public let capacity: Int
    private let state: Mutex<State>

    private struct State {
        var entries: [LogEntry] = []
        var next = 0
        var sequence: UInt64 = 0
        var observers: [UInt64: @Sendable (LogEntry) -> Void] = [:]
        var nextObserver: UInt64 = 0
    }

    /// Creates a buffer of `capacity` entries (at least 1).
    public init(capacity: Int = 10_000) {
        self.capacity = max(1, capacity)
        state = Mutex(State())
    }

    /// Appends an entry, evicting the oldest when full.
    public func append(
        timestamp: Date, level: Logger.Level, label: String, message: String, metadata: [String: String]
    ) {
        state.withLock { state in
            state.sequence += 1
            let entry = LogEntry(
                sequence: state.sequence, timestamp: timestamp, level: level, label: label, message: message,
                metadata: metadata)
            if state.entries.count < capacity {
                state.entries.append(entry)
            } else {
                state.entries[state.next] = entry
            }
            state.next = (state.next + 1) % capacity
            // Under the lock, so that observers see entries in sequence order.
            for observer in state.observers.values { observer(entry) }
        }
    }

    /// Calls `observer` with every entry appended from now on (under the buffer's lock, in sequence order: it must be
    /// quick and must not log). The token stops it.
    public func observe(_ observer: @escaping @Sendable (LogEntry) -> Void) -> UInt64 {
        state.withLock { state in
            state.nextObserver += 1
            state.observers[state.nextObserver] = observer
            return state.nextObserver
        }
    }

    /// Stops the observer `observe` returned `token` for.
    public func stopObserving(_ token: UInt64) {
        _ = state.withLock { $0.observers.removeValue(forKey: token) }
    }

    /// Entries logged so far, kept or not.
    public var total: UInt64 { state.withLock { $0.sequence } }

    /// The newest `limit` entries at `minimumLevel` or above, after `since` (exclusive), of `worker` if given; oldest
    /// first.
    public func query(minimumLevel: Logger.Level, since: Date?, worker: String?, limit: Int) -> [LogEntry] {
        page(minimumLevel: minimumLevel, since: since, afterSequence: nil, worker: worker, limit: limit).entries
    }

    /// The newest `limit` entries at `minimumLevel` or above, after `since` and after sequence number `afterSequence`
    /// (both exclusive), of `worker` if given, oldest first; and `total` taken at the same instant, so that a client
    /// following the log with `afterSequence: total` misses nothing logged after this call.
    public func page(
        minimumLevel: Logger.Level, since: Date?, afterSequence: UInt64?, worker: String?, limit: Int
    ) -> (entries: [LogEntry], total: UInt64) {
        let (ordered, total) = state.withLock { state in
            (
                state.entries.count < capacity
                    ? state.entries : Array(state.entries[state.next...] + state.entries[..<state.next]),
                state.sequence
            )
        }
        var matched: [LogEntry] = []
        for entry in ordered.reversed() where matched.count < limit {
            // Sequence numbers grow along the ring: the rest is older still. A follower asks for few new entries out
            // of up to 10,000: this keeps its polls cheap.
            if let afterSequence, entry.sequence <= afterSequence { break }
            if entry.level < minimumLevel { continue }
            if let since, entry.timestamp <= since { continue }
            if let worker, entry.metadata["worker_id"] != worker { continue }
            matched.append(entry)
        }
        return (matched.reversed(), total)
    }
}

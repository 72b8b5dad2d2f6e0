import RuntimeCore
import Synchronization

/// Between a session stream's reader and the task that hands its heartbeats to the engine: the reader never waits
/// for the engine (it keeps reading, and each heartbeat's arrival is recorded as it is read), and what the engine has
/// not taken yet is one heartbeat, the latest. Heartbeats that arrive while the engine is busy fold into it: the
/// latest step and arrival, and the latest non-empty metrics (an empty map means "nothing new"), so nothing a worker
/// reported is lost and memory stays bounded however fast a client sends.
final class SessionInbox: Sendable {
    /// A heartbeat waiting for the engine, with the moment (monotonic) the latest heartbeat folded into it arrived.
    struct Pending {
        var heartbeat: ValidatedHeartbeat
        var arrivedAt: Duration
    }

    private struct State {
        var pending: Pending?
        /// Set when the reader ended: nil error for a clean end of the stream.
        var ended: (any Error)?? = nil
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// The reader read a heartbeat that arrived at `arrivedAt`.
    func put(_ heartbeat: ValidatedHeartbeat, arrivedAt: Duration) {
        let waiter = state.withLock { state in
            var folded = heartbeat
            if let earlier = state.pending, heartbeat.metrics.isEmpty { folded.metrics = earlier.heartbeat.metrics }
            state.pending = Pending(heartbeat: folded, arrivedAt: max(arrivedAt, state.pending?.arrivedAt ?? arrivedAt))
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// The reader ended: cleanly (the worker closed its side) or with `error` (a bad message, a broken stream).
    func end(_ error: (any Error)?) {
        let waiter = state.withLock { state in
            if state.ended == nil { state.ended = .some(error) }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// The next heartbeat for the engine: waits for one; nil once the reader ended cleanly and everything was taken
    /// (or on cancellation).
    ///
    /// - Throws: the reader's error, once what arrived before it was taken.
    func next() async throws -> Pending? {
        while true {
            let outcome: Result<Pending?, any Error>? = state.withLock { state in
                if let pending = state.pending {
                    state.pending = nil
                    return .success(pending)
                }
                switch state.ended {
                case .some(.some(let error)): return .failure(error)
                case .some(.none): return .success(nil)
                case .none: return nil
                }
            }
            if let outcome { return try outcome.get() }
            if Task.isCancelled { return nil }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let ready = state.withLock { state in
                        if state.pending != nil || state.ended != nil { return true }
                        state.waiter = continuation
                        return false
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                let waiter = state.withLock { state in
                    defer { state.waiter = nil }
                    return state.waiter
                }
                waiter?.resume()
            }
        }
    }
}

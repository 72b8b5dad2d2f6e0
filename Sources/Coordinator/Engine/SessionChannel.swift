import Synchronization

/// The coordinator's end of one `WorkerSession` stream, between the stream's reader, the engine and the one task that
/// serves the stream: the heartbeats the reader read that the engine has not taken yet, and the updates the engine
/// queued for the worker (acknowledgements and pushes). The serving task takes the updates first, so each goes out
/// in the engine's order and before the next heartbeat is handed to the engine; with one task for both, a heartbeat's
/// acknowledgement is written without waking another task.
///
/// Both sides stay bounded however fast a client sends or however slowly it reads:
/// - What the engine has not taken yet is one heartbeat, the latest: heartbeats that arrive while the engine is busy
///   fold into it (the latest step and arrival, and the latest non-empty metrics, an empty map meaning "nothing
///   new"), so nothing a worker reported is lost. The reader records each arrival as it reads it, never waiting for
///   the engine.
/// - Updates keep the newest ``bufferSize``: views are level-triggered (each carries the worker's whole current
///   state), so a worker that reads too slowly skips stale views instead of making the coordinator queue them.
///
/// Closing is sticky: the reason survives however many updates race with it, so the serving task always learns why
/// the stream ended.
public final class SessionChannel: Sendable {
    /// How many unread updates a stream keeps before dropping the oldest.
    public static let bufferSize = 16

    /// A heartbeat waiting for the engine, with the moment (monotonic) the latest heartbeat folded into it arrived.
    struct Pending {
        var heartbeat: ValidatedHeartbeat
        var arrivedAt: Duration
    }

    /// What the serving task does next.
    enum Next {
        /// Write an update to the stream.
        case update(SessionUpdate)
        /// Hand a heartbeat to the engine.
        case heartbeat(Pending)
    }

    private struct State {
        var updates: [SessionUpdate] = []
        var pending: Pending?
        /// Set when the reader ended: nil error for a clean end of the stream.
        var readerEnded: (any Error)?? = nil
        /// Set when the coordinator ended the stream (``finish()`` or ``close(reason:)``).
        var finished = false
        var closeReason: String?
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// An open channel.
    public init() {}

    // MARK: The engine's side

    /// Queues an update for the worker (nothing once the channel is finished).
    public func send(_ update: SessionUpdate) {
        wake { state in
            guard !state.finished else { return }
            if state.updates.count == Self.bufferSize { state.updates.removeFirst() }
            state.updates.append(update)
        }
    }

    /// Ends the stream from the coordinator's side without a reason: no heartbeat is handed on, what is queued still
    /// goes out, and nothing more is queued.
    public func finish() {
        wake { $0.finished = true }
    }

    /// Ends the stream on the coordinator's initiative; what is queued still goes out, then the call ends with
    /// UNAVAILABLE and `reason`.
    public func close(reason: String) {
        wake { state in
            state.closeReason = state.closeReason ?? reason
            state.finished = true
        }
    }

    /// Why the coordinator closed the stream, if it did.
    public var closeReason: String? { state.withLock { $0.closeReason } }

    // MARK: The reader's side

    /// The reader read a heartbeat that arrived at `arrivedAt`.
    func put(_ heartbeat: ValidatedHeartbeat, arrivedAt: Duration) {
        wake { state in
            var folded = heartbeat
            if let earlier = state.pending, heartbeat.metrics.isEmpty { folded.metrics = earlier.heartbeat.metrics }
            state.pending = Pending(heartbeat: folded, arrivedAt: max(arrivedAt, state.pending?.arrivedAt ?? arrivedAt))
        }
    }

    /// The reader ended: cleanly (the worker closed its side) or with `error` (a bad message, a broken stream).
    func readerEnded(_ error: (any Error)?) {
        wake { state in
            if state.readerEnded == nil { state.readerEnded = .some(error) }
        }
    }

    // MARK: The serving task's side

    /// What to do next: the oldest queued update, else the heartbeat waiting for the engine (unless the coordinator
    /// ended the stream); waits for either. Nil once the stream is over: the coordinator ended it (see
    /// ``closeReason``) or the reader ended cleanly, with everything taken; or once the serving task is cancelled
    /// (its call is gone: nothing more is written or handed on).
    ///
    /// - Throws: the reader's error, once what arrived before it was taken.
    func next() async throws -> Next? {
        while true {
            if Task.isCancelled { return nil }
            let outcome: Result<Next?, any Error>? = state.withLock { state in
                if !state.updates.isEmpty { return .success(.update(state.updates.removeFirst())) }
                if state.finished { return .success(nil) }
                if let pending = state.pending {
                    state.pending = nil
                    return .success(.heartbeat(pending))
                }
                switch state.readerEnded {
                case .some(.some(let error)): return .failure(error)
                case .some(.none): return .success(nil)
                case .none: return nil
                }
            }
            if let outcome { return try outcome.get() }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    // Cancelled before this wait began, the handler below found no waiter to resume.
                    let ready = state.withLock { state in
                        let ready =
                            !state.updates.isEmpty || state.finished || state.pending != nil
                            || state.readerEnded != nil || Task.isCancelled
                        if !ready { state.waiter = continuation }
                        return ready
                    }
                    if ready { continuation.resume() }
                }
            } onCancel: {
                wake { _ in }
            }
        }
    }

    /// Changes the state and resumes the serving task if it waits.
    private func wake(_ change: (inout State) -> Void) {
        let waiter = state.withLock { state in
            change(&state)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }
}

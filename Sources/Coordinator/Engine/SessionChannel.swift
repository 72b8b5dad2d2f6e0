import RuntimeCore
import Synchronization

/// The coordinator's end of one `WorkerSession` stream, between the stream's reader, the engine and the task that
/// serves the stream: the heartbeat the reader read that the engine has not taken yet, and the updates the engine
/// queued for the worker (acknowledgements and pushes), which the serving task writes in the engine's order.
///
/// A heartbeat goes to the engine through the engine's ``HeartbeatInbox``, handed over by whichever side last held it
/// up (the reader that read it, the engine done with the previous one, the serving task done writing), and the engine
/// queues the acknowledgement here: a heartbeat wakes only the serving task, to write its acknowledgement (the engine
/// takes the heartbeats of many sessions in one turn).
///
/// Both sides stay bounded however fast a client sends or however slowly it reads:
/// - What the engine has not taken yet is one heartbeat, the latest: heartbeats that arrive while the engine is busy
///   with the session's previous one, or while updates wait to be written, fold into it (the latest step and arrival,
///   and the latest non-empty metrics, an empty map meaning "nothing new"), so nothing a worker reported is lost. A
///   heartbeat is handed to the engine only once every update queued for the stream went out and the engine is done
///   with the previous one: a worker that stops reading its stream holds up only its own steps and metrics (the reader
///   records each arrival as it reads it, never waiting for the engine).
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

    private struct State {
        var updates: [SessionUpdate] = []
        var pending: Pending?
        /// In the engine's inbox: the engine takes ``pending`` when it gets to it.
        var handed = false
        /// The engine took a heartbeat and has not queued its acknowledgement (or given up on it) yet.
        var inEngine = false
        /// The serving task is writing the update ``next(handOff:)`` returned last.
        var writing = false
        /// The stream's worker and its token in the ``SessionRegistry``, once the engine attached it.
        var attached: (worker: WorkerID, token: SessionRegistry.Token)?
        /// Set when the reader ended: nil error for a clean end of the stream.
        var readerEnded: (any Error)?? = nil
        /// Set when the stream ends: the coordinator closed it (``close(reason:)``), the engine refused its heartbeat
        /// (``refuse(_:)``), or the serving task is done (``served()``).
        var finished = false
        /// Set once the serving task is done (``served()``): the engine attaches nothing more.
        var served = false
        var closeReason: String?
        var refusal: (any Error)?
        var waiter: CheckedContinuation<Void, Never>?

        /// Whether the waiting heartbeat goes to the engine now; marks it handed if so.
        mutating func handOff() -> Bool {
            guard pending != nil, !handed, !inEngine, updates.isEmpty, !writing, !finished else { return false }
            handed = true
            return true
        }
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

    /// The engine refused a heartbeat (the worker is no longer known): the stream ends with `error` once what is
    /// queued went out (a close of the coordinator's outranks it: the worker reconnects rather than register).
    func refuse(_ error: any Error) {
        wake { state in
            state.refusal = state.refusal ?? error
            state.inEngine = false
            state.finished = true
        }
    }

    /// Why the engine refused the stream's heartbeat, if it did.
    var refusal: (any Error)? { state.withLock { $0.refusal } }

    /// The engine takes the heartbeat handed to it (nil if none was, or the stream ended), with the registry token the
    /// stream was attached with (nil before the first).
    func take() -> (Pending, SessionRegistry.Token?)? {
        state.withLock { state in
            guard state.handed else { return nil }
            state.handed = false
            guard !state.finished, let pending = state.pending else { return nil }
            state.pending = nil
            state.inEngine = true
            return (pending, state.attached?.token)
        }
    }

    /// The engine attached the stream to `worker` in the registry with `token`; false if the serving task is already
    /// done (the engine then detaches it again).
    func attach(_ worker: WorkerID, token: SessionRegistry.Token) -> Bool {
        state.withLock { state in
            guard !state.served else { return false }
            state.attached = (worker, token)
            return true
        }
    }

    /// The engine is done with the heartbeat it took and queued `acknowledgement` (nil: none, e.g. its view could not
    /// be made durable); true if the next heartbeat, one that arrived meanwhile, is to be handed to the engine now.
    func done(acknowledging acknowledgement: SessionUpdate?) -> Bool {
        var handOff = false
        wake { state in
            state.inEngine = false
            if let acknowledgement, !state.finished {
                if state.updates.count == Self.bufferSize { state.updates.removeFirst() }
                state.updates.append(acknowledgement)
            }
            handOff = state.handOff()
        }
        return handOff
    }

    // MARK: The reader's side

    /// The reader read a heartbeat that arrived at `arrivedAt`; true if the reader is to hand the channel to the
    /// engine now (otherwise the heartbeat waits, folded with any later ones, for the engine to finish the previous
    /// one or for the queued updates to go out).
    func put(_ heartbeat: ValidatedHeartbeat, arrivedAt: Duration) -> Bool {
        state.withLock { state in
            var folded = heartbeat
            if let earlier = state.pending, heartbeat.metrics.isEmpty { folded.metrics = earlier.heartbeat.metrics }
            state.pending = Pending(heartbeat: folded, arrivedAt: max(arrivedAt, state.pending?.arrivedAt ?? arrivedAt))
            return state.handOff()
        }
    }

    /// The reader ended: cleanly (the worker closed its side) or with `error` (a bad message, a broken stream).
    func readerEnded(_ error: (any Error)?) {
        wake { state in
            if state.readerEnded == nil { state.readerEnded = .some(error) }
        }
    }

    // MARK: The serving task's side

    /// The next update to write, waiting for one; `handOff` is called when the update written last (the one the call
    /// before returned) was the last queued one and lets the waiting heartbeat go to the engine. Nil once the stream
    /// is over: the coordinator ended it (see ``closeReason``, ``refusal``), or the reader ended cleanly and the engine
    /// answered what arrived before; or once the serving task is cancelled (its call is gone: nothing more is written).
    ///
    /// - Throws: the reader's error, once what arrived before it was answered.
    func next(handOff: () -> Void) async throws -> SessionUpdate? {
        // The update returned last was written.
        if state.withLock({ state in
            state.writing = false
            return state.handOff()
        }) {
            handOff()
        }
        while true {
            if Task.isCancelled { return nil }
            let outcome: Result<SessionUpdate?, any Error>? = state.withLock { state in
                if !state.updates.isEmpty {
                    state.writing = true
                    return .success(state.updates.removeFirst())
                }
                if state.finished { return .success(nil) }
                guard state.pending == nil, !state.handed, !state.inEngine else { return nil }
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
                            !state.updates.isEmpty || state.finished
                            || (state.readerEnded != nil && state.pending == nil && !state.handed && !state.inEngine)
                            || Task.isCancelled
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

    /// The serving task is done: the stream is finished, and the registry attachment to undo, if the engine made one.
    func served() -> (worker: WorkerID, token: SessionRegistry.Token)? {
        var attached: (worker: WorkerID, token: SessionRegistry.Token)?
        wake { state in
            state.served = true
            state.finished = true
            attached = state.attached
        }
        return attached
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

import Synchronization

/// The session streams whose heartbeat waits for the engine, in the order they were handed over. They are handed over
/// without waiting; the engine takes them all at once, one turn of the actor for many sessions' heartbeats instead of
/// a round trip to the actor for each (see ``CoordinatorEngine/hand(_:)``).
///
/// Bounded: a stream is in the inbox at most once (``SessionChannel`` folds the heartbeats that arrive meanwhile).
final class HeartbeatInbox: Sendable {
    private struct State {
        var channels: [SessionChannel] = []
        /// A drain of the engine's is scheduled or running: it takes what is added meanwhile.
        var draining = false
    }

    private let state = Mutex(State())

    /// Adds a stream; true if no drain is scheduled (the caller schedules one).
    func add(_ channel: SessionChannel) -> Bool {
        state.withLock { state in
            state.channels.append(channel)
            defer { state.draining = true }
            return !state.draining
        }
    }

    /// Takes every stream, oldest first; none (and the drain is over: the next ``add(_:)`` schedules one) when the
    /// inbox is empty.
    func take() -> [SessionChannel] {
        state.withLock { state in
            if state.channels.isEmpty { state.draining = false }
            defer { state.channels = [] }
            return state.channels
        }
    }
}

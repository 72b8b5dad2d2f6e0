import Synchronization

/// What must end when the coordinator shuts down: long-lived streams (such as BarrierStream) that would otherwise hold
/// the gRPC server's graceful shutdown open until their clients hang up.
public final class ShutdownLatch: Sendable {
    private struct State {
        var closed = false
        var next: UInt64 = 0
        var handlers: [UInt64: @Sendable () -> Void] = [:]
    }

    private let state = Mutex(State())

    /// An open latch.
    public init() {}

    /// Calls `handler` at shutdown (at once when the coordinator is already shutting down); the token unregisters it.
    func register(_ handler: @escaping @Sendable () -> Void) -> UInt64? {
        let token = state.withLock { state -> UInt64? in
            guard !state.closed else { return nil }
            state.next += 1
            state.handlers[state.next] = handler
            return state.next
        }
        if token == nil { handler() }
        return token
    }

    /// Forgets the handler `register` returned `token` for.
    func unregister(_ token: UInt64?) {
        guard let token else { return }
        _ = state.withLock { $0.handlers.removeValue(forKey: token) }
    }

    /// Shutdown: calls every handler once, and any registered from now on at once.
    public func close() {
        let handlers = state.withLock { state in
            state.closed = true
            defer { state.handlers = [:] }
            return Array(state.handlers.values)
        }
        for handler in handlers { handler() }
    }
}

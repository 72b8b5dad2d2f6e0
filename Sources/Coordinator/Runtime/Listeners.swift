import Synchronization

/// The ports the servers actually bound (the configured ones may be 0), known once each server is up.
public final class Listeners: Sendable {
    /// Bound ports, when known.
    public struct Ports: Sendable, Hashable {
        /// gRPC port.
        public var grpc: Int?
        /// HTTP port.
        public var http: Int?
    }

    /// The configured bind address.
    public let host: String

    private typealias Waiter = CheckedContinuation<(grpc: Int, http: Int)?, Never>

    private struct State {
        var ports = Ports()
        /// Whoever waits for both servers (`dtr serve`'s ready line, the demo swarm, tests), by waiter number.
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        /// Waiters cancelled before they were parked.
        var cancelled: Set<UInt64> = []
    }

    private let state = Mutex(State())

    /// Creates listeners for servers bound to `host`.
    public init(host: String) {
        self.host = host
    }

    /// The ports known so far.
    public var current: Ports { state.withLock { $0.ports } }

    /// Records the bound gRPC port.
    public func grpcBound(port: Int) {
        update { $0.grpc = port }
    }

    /// Records the bound HTTP port.
    public func httpBound(port: Int) {
        update { $0.http = port }
    }

    private func update(_ change: (inout Ports) -> Void) {
        let (ready, waiters) = state.withLock { state -> ((grpc: Int, http: Int)?, [Waiter]) in
            change(&state.ports)
            guard let grpc = state.ports.grpc, let http = state.ports.http else { return (nil, []) }
            defer { state.waiters = [:] }
            return ((grpc, http), Array(state.waiters.values))
        }
        for waiter in waiters { waiter.resume(returning: ready) }
    }

    /// Waits until both servers are bound (any number of waiters); nil if cancelled first.
    func waitUntilBound() async -> (grpc: Int, http: Int)? {
        let number = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: Waiter) in
                let resume = state.withLock { state -> (grpc: Int, http: Int)?? in
                    if let grpc = state.ports.grpc, let http = state.ports.http { return .some((grpc, http)) }
                    if state.cancelled.remove(number) != nil { return .some(nil) }
                    state.waiters[number] = waiter
                    return nil
                }
                if let resume { waiter.resume(returning: resume) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                guard let waiter = state.waiters.removeValue(forKey: number) else {
                    state.cancelled.insert(number)
                    return nil as Waiter?
                }
                return waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}

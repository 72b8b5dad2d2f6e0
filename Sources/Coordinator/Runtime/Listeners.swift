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
    private let ports = Mutex(Ports())
    /// Every change of `ports`, newest only, for whoever waits for both servers.
    private let changes: (stream: AsyncStream<Ports>, continuation: AsyncStream<Ports>.Continuation)

    /// Creates listeners for servers bound to `host`.
    public init(host: String) {
        self.host = host
        changes = AsyncStream.makeStream(of: Ports.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The ports known so far.
    public var current: Ports { ports.withLock { $0 } }

    /// Records the bound gRPC port.
    public func grpcBound(port: Int) {
        update { $0.grpc = port }
    }

    /// Records the bound HTTP port.
    public func httpBound(port: Int) {
        update { $0.http = port }
    }

    private func update(_ change: (inout Ports) -> Void) {
        let now = ports.withLock { ports in
            change(&ports)
            return ports
        }
        changes.continuation.yield(now)
    }

    /// Waits until both servers are bound (one waiter at a time); nil if cancelled first.
    func waitUntilBound() async -> (grpc: Int, http: Int)? {
        if let grpc = current.grpc, let http = current.http { return (grpc, http) }
        for await ports in changes.stream {
            if let grpc = ports.grpc, let http = ports.http { return (grpc, http) }
        }
        return nil
    }
}

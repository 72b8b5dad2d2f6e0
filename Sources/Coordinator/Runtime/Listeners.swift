import Synchronization

/// The addresses the servers actually bound (the configured port may be 0), known once each server is up.
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
    private let httpReady: (stream: AsyncStream<Int>, continuation: AsyncStream<Int>.Continuation)

    /// Creates listeners for servers bound to `host`.
    public init(host: String) {
        self.host = host
        httpReady = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// The ports known so far.
    public var current: Ports { ports.withLock { $0 } }

    /// Records the bound gRPC port.
    public func grpcBound(port: Int) {
        ports.withLock { $0.grpc = port }
    }

    /// Records the bound HTTP port (called by the HTTP server once it runs).
    public func httpBound(port: Int) {
        ports.withLock { $0.http = port }
        httpReady.continuation.yield(port)
        httpReady.continuation.finish()
    }

    /// Waits until the HTTP server is bound; nil if cancelled first.
    func waitForHTTP() async -> Int? {
        if let port = current.http { return port }
        for await port in httpReady.stream { return port }
        return current.http
    }
}

public import GRPCCore
public import GRPCNIOTransportHTTP2
import NIOCore
public import RuntimeProto
import Synchronization

/// Where a swarm connects: a coordinator's gRPC address, and the worker token when it needs one.
public struct SwarmTarget: Sendable, Hashable {
    /// An IP address (IPv4, or IPv6 without brackets) or a host name.
    public var host: String
    /// The gRPC port.
    public var port: Int
    /// The worker token (`authorization: Bearer ...`), if the coordinator requires one.
    public var token: String?

    /// A target.
    public init(host: String, port: Int, token: String? = nil) {
        self.host = host
        self.port = port
        self.token = token
    }
}

/// A few HTTP/2 connections that many simulated workers share, as the processes of one host would share their
/// machine's network: every call and stream of a worker goes over the connection its index picks.
///
/// Each connection is its own `GRPCClient` (grpc-swift-2 keeps one HTTP/2 connection per client and address), so the
/// calls of a swarm are spread over `count` connections. ``run()`` must be running for calls to make progress.
public final class SwarmConnections: Sendable {
    /// The generated client of the coordinator's service over one of the connections.
    public typealias Stub = Dtruntime_V1_Coordinator.Client<HTTP2ClientTransport.Posix>

    private let clients: [GRPCClient<HTTP2ClientTransport.Posix>]
    /// One for each client.
    private let tcpConnections: [TCPConnectionLog]
    /// What every call carries: the worker token, when there is one.
    public let metadata: Metadata

    /// Opens nothing yet: the connections are made by ``run()``.
    ///
    /// - Throws: the transport's error for a target it cannot resolve.
    public init(target: SwarmTarget, connections: Int) throws {
        let resolvable: any ResolvableTarget
        if target.host.contains(":") {
            resolvable = ResolvableTargets.IPv6(addresses: [.init(host: target.host, port: target.port)])
        } else if target.host.allSatisfy({ $0.isNumber || $0 == "." }) {
            resolvable = ResolvableTargets.IPv4(addresses: [.init(host: target.host, port: target.port)])
        } else {
            resolvable = ResolvableTargets.DNS(host: target.host, port: target.port)
        }
        let logs = (0..<max(1, connections)).map { _ in TCPConnectionLog() }
        tcpConnections = logs
        clients = try logs.map { made in
            GRPCClient(
                transport: try .http2NIOPosix(
                    target: resolvable, transportSecurity: .plaintext,
                    config: .defaults {
                        // As the Python SDK's channel: back within a second after the coordinator restarts.
                        $0.backoff = .init(initial: .milliseconds(100), max: .seconds(1), multiplier: 1.6, jitter: 0.2)
                        // Called before the connection is attempted: an attempt now, a connection made once it is up
                        // (an address that refuses it, e.g. `localhost`'s ::1 before 127.0.0.1, is not one).
                        $0.channelDebuggingCallbacks.onCreateTCPConnection = { channel in
                            made.attempted()
                            return channel.eventLoop.makeCompletedFuture {
                                try channel.pipeline.syncOperations.addHandler(made)
                            }
                        }
                    }))
        }
        var metadata: Metadata = [:]
        if let token = target.token { metadata.addString("Bearer \(token)", forKey: "authorization") }
        self.metadata = metadata
    }

    /// How many connections there are.
    public var count: Int { clients.count }

    /// How many TCP connections were made so far: ``count`` once all are up, more when connections were lost (the
    /// coordinator restarted, or a connection failed) and made again.
    public var made: Int { tcpConnections.reduce(0) { $0 + $1.times.withLock { $0.made } } }

    /// For each connection (in the order of ``client(_:)``), when TCP connections were attempted and when they were
    /// up (``monotonicNanoseconds()``), in time order, the latest 4,096 of each: when a coordinator that restarted
    /// was first reached again, and how the clients spaced their attempts until then.
    public var connectionTimes: [(attempted: [Int64], up: [Int64])] {
        tcpConnections.map { log in log.times.withLock { ($0.attempted.times, $0.up.times) } }
    }

    /// The client of connection `index % count`.
    public func client(_ index: Int) -> GRPCClient<HTTP2ClientTransport.Posix> {
        clients[index % clients.count]
    }

    /// The coordinator's generated client over connection `index % count`.
    public func stub(_ index: Int) -> Stub { Stub(wrapping: client(index)) }

    /// Runs every connection until ``shutdown()``.
    public func run() async throws {
        try await withThrowingDiscardingTaskGroup { group in
            for client in clients { group.addTask { try await client.runConnections() } }
        }
    }

    /// Lets open calls finish, then closes every connection (``run()`` returns).
    public func shutdown() {
        for client in clients { client.beginGracefulShutdown() }
    }
}

/// The TCP connections one of a swarm's clients attempted and made: counted by the transport's callback (attempts)
/// and by a handler in each connection's pipeline (once it is up).
private final class TCPConnectionLog: ChannelInboundHandler, Sendable {
    typealias InboundIn = Any

    struct Times {
        var made = 0
        var attempted = TimeLog(capacity: 4096)
        var up = TimeLog(capacity: 4096)
    }

    let times = Mutex(Times())

    func attempted() {
        times.withLock { $0.attempted.noteNow() }
    }

    func channelActive(context: ChannelHandlerContext) {
        times.withLock {
            $0.made += 1
            $0.up.noteNow()
        }
        context.fireChannelActive()
    }
}

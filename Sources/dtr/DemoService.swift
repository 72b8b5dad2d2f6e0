import Coordinator
import Logging
import ServiceLifecycle
import Swarm

/// `dtr serve --demo`: once the servers listen, a ``DemoSwarm`` trains against them over loopback, through the same
/// gRPC API real workers use. On graceful shutdown its workers leave their tasks before the servers drain.
struct DemoService: Service {
    let runtime: CoordinatorRuntime
    /// The address the coordinator binds (the swarm dials the loopback address of its family for a wildcard).
    let host: String
    let token: String?
    let deadAfter: Duration
    let logger: Logger

    func run() async throws {
        let ports = try await runtime.waitUntilListening()
        let demo = DemoSwarm(
            target: SwarmTarget(host: Self.dialable(host), port: ports.grpc, token: token), deadAfter: deadAfter,
            logger: logger)
        try await withGracefulShutdownHandler {
            try await demo.run()
        } onGracefulShutdown: {
            demo.stop()
        }
    }

    /// Where to dial a coordinator bound to `host`: itself, or loopback for a wildcard address.
    static func dialable(_ host: String) -> String {
        switch host {
        case "0.0.0.0": "127.0.0.1"
        case "::", "[::]": "::1"
        default: host
        }
    }
}

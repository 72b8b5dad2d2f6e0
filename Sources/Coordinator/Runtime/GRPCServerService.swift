import GRPCCore
import GRPCNIOTransportHTTP2
public import ServiceLifecycle

/// Runs the gRPC server as a service: on graceful shutdown it first closes the workers' session streams, fails the
/// calls parked at barriers and checkpoint commits (which would otherwise hold the shutdown until their timeouts) and
/// ends the barrier streams, then lets in-flight calls drain.
public struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let engine: CoordinatorEngine
    let listeners: Listeners

    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
                group.addTask {
                    // A failure to bind surfaces through serve(), with its cause; nothing to add here.
                    let address = try? await server.listeningAddress
                    if let port = address?.ipv4?.port ?? address?.ipv6?.port { listeners.grpcBound(port: port) }
                }
            }
        } onGracefulShutdown: {
            engine.sessions.closeAll()
            let engine = engine
            let server = server
            Task {
                await engine.failParkedCalls()
                engine.barrierStreams.close()
                server.beginGracefulShutdown()
            }
        }
    }
}

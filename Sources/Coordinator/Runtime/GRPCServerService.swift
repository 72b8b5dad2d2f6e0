import GRPCCore
import GRPCNIOTransportHTTP2
public import ServiceLifecycle

/// Runs the gRPC server as a service: on graceful shutdown it first closes the workers' session streams (which
/// would otherwise never end), then lets in-flight calls drain.
public struct GRPCServerService: Service {
    let server: GRPCServer<HTTP2ServerTransport.Posix>
    let sessions: SessionRegistry
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
            sessions.closeAll()
            server.beginGracefulShutdown()
        }
    }
}

import Coordinator
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import HummingbirdTesting
import Logging
import RuntimeProto
import ServiceLifecycle
import Testing

/// The whole coordinator as `dtr serve` builds it, on real loopback sockets with free ports.
@Suite("Live coordinator on loopback")
struct LiveLoopbackTests {
    func config(_ directory: TemporaryDirectory, grpcPort: Int = 0) -> CoordinatorConfig {
        CoordinatorConfig(grpcPort: grpcPort, httpPort: 0, dataDir: directory.path)
    }

    /// Runs the coordinator's services until `body` returns, then shuts them down gracefully.
    func withCoordinator<T: Sendable>(
        _ config: CoordinatorConfig, _ body: @Sendable (CoordinatorRuntime, (grpc: Int, http: Int)) async throws -> T
    ) async throws -> T {
        let runtime = try buildCoordinator(config: config, logger: Logger(label: "live-test"))
        let group = ServiceGroup(services: runtime.services, logger: Logger(label: "live-test"))
        return try await withThrowingTaskGroup(of: (grpc: Int, http: Int)?.self) { tasks in
            tasks.addTask {
                try await group.run()
                return nil
            }
            tasks.addTask { try await runtime.waitUntilListening() }
            // The first to finish is either the ports, or the group failing to start (its error is thrown here).
            guard let ports = try await tasks.next() ?? nil else {
                throw CancellationError()
            }
            let result = try await body(runtime, ports)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return result
        }
    }

    @Test("a worker registers over HTTP/2 and shows up in /api/workers over HTTP/1.1; shutdown is graceful")
    func registerAndList() async throws {
        let directory = TemporaryDirectory()
        try await withCoordinator(config(directory)) { _, ports in
            #expect(ports.grpc > 0 && ports.http > 0)
            try await withGRPCClient(
                transport: try .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: ports.grpc), transportSecurity: .plaintext)
            ) { grpc in
                let client = Dtruntime_V1_Coordinator.Client(wrapping: grpc)
                let reply = try await client.registerWorker(registration("live-0", gpus: 4))
                #expect(reply.view.rank == 0)
            }
            try await TestClient.withClient(host: "127.0.0.1", port: ports.http) { http in
                let response = try await http.get("/api/workers")
                #expect(response.status == .ok)
                let body = try #require(response.body)
                let workers = try #require(try json(body)["workers"] as? [[String: Any]])
                #expect(workers.first?["worker_id"] as? String == "live-0")
                #expect(workers.first?["gpu_count"] as? Int == 4)
                let statusBody = try #require(try await http.get("/api/status").body)
                let status = try json(statusBody)
                #expect(status["grpc_port"] as? Int == ports.grpc && status["http_port"] as? Int == ports.http)
            }
        }
    }

    @Test("a busy gRPC port is explained in terms of the flag that fixes it")
    func portInUse() async throws {
        let first = TemporaryDirectory()
        let second = TemporaryDirectory()
        try await withCoordinator(config(first)) { _, ports in
            let clashing = config(second, grpcPort: ports.grpc)
            let runtime = try buildCoordinator(config: clashing, logger: Logger(label: "clash"))
            let group = ServiceGroup(services: runtime.services, logger: Logger(label: "clash"))
            let error = await #expect(throws: (any Error).self) { try await group.run() }
            let explanation = try #require(error.flatMap { describeStartupFailure($0, config: clashing) })
            #expect(
                explanation == "port \(ports.grpc) is in use: pass --grpc-port (or DTR_GRPC_PORT); 0 picks a free port")
        }
    }

    @Test("a second coordinator on the same data dir is refused")
    func dataDirLocked() async throws {
        let directory = TemporaryDirectory()
        try await withCoordinator(config(directory)) { _, _ in
            let error = #expect(throws: (any Error).self) {
                try buildCoordinator(config: config(directory), logger: Logger(label: "second"))
            }
            #expect("\(error.map { "\($0)" } ?? "")".contains("is in use by another coordinator"))
        }
    }
}

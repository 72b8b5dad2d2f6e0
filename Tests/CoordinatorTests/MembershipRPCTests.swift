import Coordinator
import GRPCCore
import RuntimeCore
import RuntimeProto
import Storage
import Testing

@Suite("gRPC membership (in-process)")
struct MembershipRPCTests {
    @Test("four workers register with ranks 0..3 and learn the heartbeat timing")
    func register() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            for index in 0..<4 {
                let reply = try await client.registerWorker(registration("w\(index)"))
                #expect(reply.view.rank == Int32(index))
                #expect(reply.view.worldSize == Int32(index + 1))
                #expect(reply.view.membershipEpoch == UInt64(index + 1))
                #expect(reply.view.command == .continue)
                #expect(reply.heartbeatIntervalMs == 1000 && reply.suspectAfterMs == 2000 && reply.deadAfterMs == 5000)
                #expect(reply.coordinatorVersion == DTRuntimeVersion.current)
            }
        }
    }

    @Test("a registration is durable when acknowledged")
    func durable() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("w0", task: "job", port: 9000, gpus: 8))
            // Read back through a second connection to the same file, as a restarted coordinator would.
            let persisted = try SQLiteStateStore(path: harness.directory.databasePath).loadMembership()
            #expect(persisted.records.map(\.spec.id.rawValue) == ["w0"])
            #expect(persisted.records.first?.spec.gpuCount == 8)
            #expect(persisted.epochs == [try TaskID("job"): 1])
        }
    }

    @Test("bad registrations are INVALID_ARGUMENT naming the field and rule, and change nothing")
    func badRegistrations() async throws {
        let harness = try Harness()
        let cases: [(Dtruntime_V1_RegisterWorkerRequest, String)] = [
            (registration(""), "worker_id must be 1-128 printable ASCII characters without spaces (got \"\")"),
            (registration(String(repeating: "w", count: 129)), "worker_id must be 1-128 printable ASCII characters"),
            (registration("bell\u{7}"), "worker_id must be 1-128 printable ASCII characters"),
            (registration("w", port: 0), "port must be between 1 and 65535 (got 0)"),
            (registration("w", port: 70_000), "port must be between 1 and 65535 (got 70000)"),
            (registration("w", gpus: -1), "gpu_count must be between 0 and 1024 (got -1)"),
            (registration("w", gpus: 4096), "gpu_count must be between 0 and 1024 (got 4096)"),
            (registration("w", task: "../etc"), "task_id must be 1-64 characters of [A-Za-z0-9._-]"),
            (
                {
                    var request = registration("w")
                    request.host = ""
                    return request
                }(),
                "host must be 1-253 printable ASCII characters without spaces"
            ),
        ]
        try await harness.withClient { client in
            for (request, message) in cases {
                let error = await #expect(throws: RPCError.self) { try await client.registerWorker(request) }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
            }
        }
        #expect(await harness.engine.workers().isEmpty)
        #expect(harness.engine.queue.lastTicket.sequence == 0, "nothing was written")
    }

    @Test("heartbeats update progress; an unknown worker gets NOT_FOUND telling it to register")
    func heartbeats() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("w0"))
            let reply = try await client.heartbeat(heartbeat("w0", step: 12, metrics: ["loss": 1.5]))
            #expect(reply.view.rank == 0 && reply.view.command == .continue && reply.view.status == .healthy)
            let snapshot = try #require(await harness.engine.workers().first)
            #expect(snapshot.step == 12 && snapshot.metrics == ["loss": 1.5])

            let error = await #expect(throws: RPCError.self) { try await client.heartbeat(heartbeat("ghost")) }
            #expect(error?.code == .notFound)
            #expect(error?.message.contains("call RegisterWorker again") == true)

            let negative = await #expect(throws: RPCError.self) {
                try await client.heartbeat(heartbeat("w0", step: -1))
            }
            #expect(negative?.message == "step must be >= 0 (got -1)")
        }
    }

    @Test("deregistering releases the rank, bumps the epoch, and is idempotent")
    func deregister() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            for name in ["a", "b", "c"] { _ = try await client.registerWorker(registration(name)) }
            let left = try await client.deregisterWorker(.with { $0.workerID = "a" })
            #expect(left.membershipEpoch == 4)
            let again = try await client.deregisterWorker(.with { $0.workerID = "a" })
            #expect(again.membershipEpoch == 4)
            let view = try await client.heartbeat(heartbeat("c")).view
            #expect(view.rank == 1 && view.worldSize == 2)
            #expect(try await client.heartbeat(heartbeat("a")).view.command == .rejoin)
            let unknown = await #expect(throws: RPCError.self) {
                try await client.deregisterWorker(.with { $0.workerID = "zzz" })
            }
            #expect(unknown?.code == .notFound)
        }
    }
}

import Coordinator
import GRPCCore
import RuntimeCore
import RuntimeProto
import Testing

/// The `dtr-reason` metadata (and its details) of an error a call ended with.
func reason(of error: RPCError?) -> String? {
    error?.metadata[stringValues: "dtr-reason"].first(where: { _ in true })
}

@Suite("gRPC errors carry reasons and details; outcomes are recorded by the call interceptor")
struct ErrorReasonRPCTests {
    @Test("unknown worker, stale epoch (with the current epoch), shard moved, not a member: each with its reason")
    func reasons() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let unknown = await #expect(throws: RPCError.self) { try await client.heartbeat(heartbeat("ghost")) }
            #expect(unknown?.code == .notFound && reason(of: unknown) == "UNKNOWN_WORKER")

            _ = try await client.registerWorker(registration("a"))
            let epoch = try await client.registerWorker(registration("b")).view.membershipEpoch
            let stale = await #expect(throws: RPCError.self) {
                try await client.barrierSync(barrierRequest("a", epoch: epoch - 1))
            }
            #expect(stale?.code == .failedPrecondition && reason(of: stale) == "STALE_EPOCH")
            #expect(stale?.metadata[stringValues: "dtr-membership-epoch"].first(where: { _ in true }) == "\(epoch)")

            _ = try await client.registerDataset(datasetRequest("d", total: 100, shardSize: 10))
            let shard = try #require(try await client.getShardAssignment(assignmentRequest("d", "a")).shards.first)
            let moved = await #expect(throws: RPCError.self) {
                try await client.reportShardProgress(
                    progress("d", "b", shard: shard.shardID, consumed: 1, membershipEpoch: epoch))
            }
            #expect(moved?.code == .failedPrecondition && reason(of: moved) == "SHARD_MOVED")

            _ = try await client.deregisterWorker(.with { $0.workerID = "b" })
            let gone = await #expect(throws: RPCError.self) {
                try await client.getShardAssignment(assignmentRequest("d", "b"))
            }
            #expect(gone?.code == .failedPrecondition && reason(of: gone) == "NOT_A_MEMBER")
        }
        let rpc = harness.engine.metrics.rpcFigures
        #expect(rpc["ReportShardProgress"]?.latency.count == 1, "the refused report is recorded as a call...")
        #expect(rpc["ReportShardProgress"]?.errors.isEmpty == true, "...but SHARD_MOVED is not an error")
        #expect(rpc["Heartbeat"]?.errors == ["not_found": 1], "codes are snake_case, as everywhere else")
        #expect(rpc["GetShardAssignment"]?.errors == ["failed_precondition": 1])
    }

    @Test("the worker token interceptor refuses with TOKEN_MISSING; bad fields are INVALID_ARGUMENT")
    func interceptorsAndGeneric() async throws {
        let harness = try Harness()
        let token = try #require(BearerToken("worker-token-0123456789"))
        try await harness.withClient(interceptors: [WorkerAuthInterceptor(token: token)]) { client in
            let refused = await #expect(throws: RPCError.self) { try await client.heartbeat(heartbeat("a")) }
            #expect(refused?.code == .unauthenticated && reason(of: refused) == "TOKEN_MISSING")
        }
        try await harness.withClient { client in
            let bad = await #expect(throws: RPCError.self) { try await client.heartbeat(heartbeat("")) }
            #expect(bad?.code == .invalidArgument && reason(of: bad) == "INVALID_ARGUMENT")
        }
    }
}

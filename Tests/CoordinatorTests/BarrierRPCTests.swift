import Coordinator
import Foundation
import GRPCCore
import RuntimeCore
import RuntimeProto
import Testing

func barrierRequest(
    _ worker: String, name: String = "sync", epoch: UInt64, timeoutMs: Int64 = 0, values: [Double]? = nil,
    op: Dtruntime_V1_ReduceOp = .sum
) -> Dtruntime_V1_BarrierSyncRequest {
    .with {
        $0.name = name
        $0.workerID = worker
        $0.membershipEpoch = epoch
        $0.timeoutMs = timeoutMs
        if let values {
            $0.payload = .with {
                $0.op = op
                $0.dtype = .float64
                $0.data = values.withUnsafeBytes { Data($0) }
            }
        }
    }
}

func doubles(_ data: Data) -> [Double] {
    data.withUnsafeBytes { raw in (0..<raw.count / 8).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self) }
    }
}

@Suite("gRPC barriers (in-process)")
struct BarrierRPCTests {
    @Test("four workers release together with the sum of their vectors, added in rank order")
    func allreduce() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            var latest: UInt64 = 0
            for index in 0..<4 {
                latest = try await client.registerWorker(registration("w\(index)")).view.membershipEpoch
            }
            let epoch = latest
            let vectors: [[Double]] = (0..<4).map { rank in (0..<5).map { Double($0) * 0.1 + Double(rank) } }
            let replies = try await withThrowingTaskGroup(of: Dtruntime_V1_BarrierSyncResponse.self) { group in
                for index in [3, 1, 0, 2] {
                    group.addTask {
                        try await client.barrierSync(barrierRequest("w\(index)", epoch: epoch, values: vectors[index]))
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let expected = (0..<5).map { i in ((vectors[0][i] + vectors[1][i]) + vectors[2][i]) + vectors[3][i] }
            #expect(replies.count == 4)
            for reply in replies {
                #expect(reply.generation == 1)
                #expect(reply.participantCount == 4 && reply.membershipEpoch == epoch)
                #expect(reply.participants.isEmpty, "a barrier of every member does not list them in each reply")
                #expect(doubles(reply.result.data) == expected, "bit-identical sum in rank order")
            }
            let status = await harness.engine.barrierStatus()
            #expect(status.released == 1 && status.releaseLatency.count == 1 && status.waitTime.count == 4)
        }
    }

    @Test("a participant's death aborts the waiters at once, naming it in the message and the metadata")
    func deathAborts() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            var latest: UInt64 = 0
            for index in 0..<4 {
                latest = try await client.registerWorker(registration("w\(index)")).view.membershipEpoch
            }
            let epoch = latest
            try await withThrowingTaskGroup(of: RPCError?.self) { group in
                for index in 0..<3 {
                    group.addTask {
                        do {
                            _ = try await client.barrierSync(barrierRequest("w\(index)", epoch: epoch))
                            return nil
                        } catch let error as RPCError {
                            return error
                        }
                    }
                }
                while await harness.engine.barrierStatus().open.first?.arrived != 3 {
                    try await Task.sleep(for: .milliseconds(5))
                }
                // w3 is silent; the others keep heartbeating until w3 is declared dead.
                try await harness.elapse(.milliseconds(5250)) {
                    for index in 0..<3 { _ = try await client.heartbeat(heartbeat("w\(index)")) }
                }
                for try await error in group {
                    let error = try #require(error)
                    #expect(error.code == .aborted)
                    #expect(error.message.contains("missing rank 3 (w3)"))
                    #expect(error.message.contains("w3 declared dead"))
                    #expect(error.metadata[stringValues: "dtr-missing-ranks"].map { $0 } == ["3"])
                    #expect(error.metadata[stringValues: "dtr-missing-workers"].map { $0 } == ["w3"])
                    #expect(reason(of: error) == "BARRIER_ABORTED")
                }
            }
        }
    }

    @Test("a timeout fails every waiter with DEADLINE_EXCEEDED naming who never came")
    func timeout() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("a"))
            let epoch = try await client.registerWorker(registration("b")).view.membershipEpoch
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let error = await #expect(throws: RPCError.self) {
                        try await client.barrierSync(barrierRequest("a", epoch: epoch, timeoutMs: 1000))
                    }
                    #expect(error?.code == .deadlineExceeded && reason(of: error) == "BARRIER_TIMEOUT")
                    #expect(error?.message.contains("1 of 2 arrived; missing rank 1 (b)") == true)
                }
                while await harness.engine.barrierStatus().open.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
                try await harness.elapse(.milliseconds(1250)) {
                    for name in ["a", "b"] { _ = try await client.heartbeat(heartbeat(name)) }
                }
                try await group.waitForAll()
            }
        }
    }

    @Test("bad barrier requests are refused to the caller with the field and the rule")
    func badInput() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let epoch = try await client.registerWorker(registration("a")).view.membershipEpoch
            var noType = barrierRequest("a", epoch: epoch, values: [1])
            noType.payload.dtype = .unspecified
            var ragged = barrierRequest("a", epoch: epoch, values: [1])
            ragged.payload.dtype = .float32
            ragged.payload.data = Data([1, 2, 3])
            var noOp = barrierRequest("a", epoch: epoch, values: [1])
            noOp.payload.op = .unspecified
            let cases: [(Dtruntime_V1_BarrierSyncRequest, RPCError.Code, String)] = [
                (noType, .invalidArgument, "payload.dtype must be DTYPE_FLOAT32 or DTYPE_FLOAT64"),
                (ragged, .invalidArgument, "payload.data must hold whole float32 values"),
                (noOp, .invalidArgument, "payload.op must be REDUCE_OP_SUM"),
                (barrierRequest("a", name: "", epoch: epoch), .invalidArgument, "name must be 1-128 characters"),
                (barrierRequest("a", epoch: epoch, timeoutMs: -1), .invalidArgument, "timeout_ms must be between 0"),
                (barrierRequest("a", epoch: epoch - 1), .failedPrecondition, "membership_epoch 0 is stale"),
                (barrierRequest("nobody", epoch: epoch), .notFound, "worker nobody is not registered"),
            ]
            for (request, code, message) in cases {
                let error = await #expect(throws: RPCError.self) { try await client.barrierSync(request) }
                #expect(error?.code == code, "\(message)")
                #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
            }
            #expect(await harness.engine.barrierStatus().open.isEmpty)
        }
    }
}

import Coordinator
import Foundation
import GRPCCore
import RuntimeCore
import RuntimeProto
import Testing

/// Sends `requests` on one BarrierStream, then ends its side; returns every reply the coordinator wrote.
private func stream(
    _ client: CoordinatorClient, _ requests: [Dtruntime_V1_BarrierSyncRequest]
) async throws -> [Dtruntime_V1_BarrierStreamReply] {
    try await client.barrierStream(
        requestProducer: { writer in
            // Two messages: the first with one call, the second with the rest.
            let calls = requests.enumerated().map { index, request in
                Dtruntime_V1_BarrierStreamCall.with {
                    $0.callID = UInt64(index + 1)
                    $0.arrival = request
                }
            }
            try await writer.write(.with { $0.calls = Array(calls.prefix(1)) })
            try await writer.write(.with { $0.calls = Array(calls.dropFirst()) })
        },
        onResponse: { response in
            try await response.messages.reduce(into: []) { $0.append($1) }
        })
}

private func register(_ client: CoordinatorClient, _ count: Int) async throws -> UInt64 {
    var latest: UInt64 = 0
    for index in 0..<count {
        latest = try await client.registerWorker(registration("w\(index)")).view.membershipEpoch
    }
    return latest
}

@Suite("gRPC barrier stream (in-process)")
struct BarrierStreamTests {
    @Test("four arrivals on one stream are released by one message naming the four calls, with the exact sum")
    func oneMessagePerGeneration() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let epoch = try await register(client, 4)
            let vectors: [[Double]] = (0..<4).map { rank in (0..<5).map { Double($0) * 0.1 + Double(rank) } }
            let replies = try await stream(
                client, [3, 1, 0, 2].map { barrierRequest("w\($0)", epoch: epoch, values: vectors[$0]) })
            let expected = (0..<5).map { i in ((vectors[0][i] + vectors[1][i]) + vectors[2][i]) + vectors[3][i] }
            #expect(replies.count == 1, "one generation, one message")
            #expect(replies.first.map { Set($0.callIds) } == [1, 2, 3, 4])
            #expect(replies.first?.code == 0)
            #expect(replies.first?.response.generation == 1)
            #expect(replies.first?.response.participantCount == 4)
            #expect(replies.first.map { doubles($0.response.result.data) } == expected, "bit-identical rank-order sum")
            let status = await harness.engine.barrierStatus()
            #expect(status.released == 1 && status.waitTime.count == 4)
        }
    }

    @Test("a bad arrival fails only its own call, in-band; the stream goes on and releases the others")
    func badArrivalFailsAlone() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let epoch = try await register(client, 2)
            var invalid = barrierRequest("w0", epoch: epoch)
            invalid.name = "bad/name"
            let replies = try await stream(
                client,
                [
                    invalid,
                    barrierRequest("w1", epoch: epoch - 1),  // stale epoch
                    barrierRequest("nobody", epoch: epoch),
                    barrierRequest("w0", epoch: epoch), barrierRequest("w1", epoch: epoch),
                ])
            let byCall = Dictionary(
                uniqueKeysWithValues: replies.flatMap { reply in reply.callIds.map { ($0, reply) } })
            #expect(byCall.count == 5, "every call answered exactly once")
            #expect(byCall[1]?.code == Int32(RPCError.Code.invalidArgument.rawValue))
            #expect(byCall[1]?.message.contains("name") == true)
            #expect(byCall[2]?.code == Int32(RPCError.Code.failedPrecondition.rawValue))
            #expect(byCall[3]?.code == Int32(RPCError.Code.notFound.rawValue))
            #expect(byCall[4]?.hasResponse == true && byCall[5]?.hasResponse == true)
            #expect(byCall[4]?.callIds.count == 2, "the two released calls share one message")
            #expect(await harness.engine.barrierStatus().released == 1)
        }
    }

    @Test("a participant's departure fails the waiting calls with ABORTED, naming it in the reply")
    func departureAborts() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let epoch = try await register(client, 3)
            let replies = try await client.barrierStream(
                requestProducer: { writer in
                    try await writer.write(
                        .with {
                            $0.calls = (0..<2).map { index in
                                .with {
                                    $0.callID = UInt64(index + 1)
                                    $0.arrival = barrierRequest("w\(index)", epoch: epoch)
                                }
                            }
                        })
                    // Both arrivals are parked before w2 leaves (the barrier table lists them).
                    while await harness.engine.barrierStatus().open.first?.arrived != 2 {
                        try await Task.sleep(for: .milliseconds(5))
                    }
                    _ = try await client.deregisterWorker(.with { $0.workerID = "w2" })
                },
                onResponse: { response in try await response.messages.reduce(into: []) { $0.append($1) } })
            #expect(replies.count == 1)
            let reply = try #require(replies.first)
            #expect(Set(reply.callIds) == [1, 2])
            #expect(!reply.hasResponse)
            #expect(reply.code == Int32(RPCError.Code.aborted.rawValue))
            #expect(reply.message.contains("w2"))
            #expect(reply.missing.map(\.workerID) == ["w2"] && reply.missing.map(\.rank) == [2])
        }
    }

    @Test("a stream the client has half-closed still delivers the answer another worker's arrival releases")
    func halfClosedStreamDeliversLaterRelease() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let epoch = try await register(client, 2)
            async let streamed = stream(client, [barrierRequest("w0", epoch: epoch)])
            // w0's arrival is parked and its stream half-closed; w1 arrives by a unary call and releases both.
            while await harness.engine.barrierStatus().open.first?.arrived != 1 {
                try await Task.sleep(for: .milliseconds(5))
            }
            let unary = try await client.barrierSync(barrierRequest("w1", epoch: epoch))
            let replies = try await streamed
            #expect(replies.count == 1 && replies.first?.callIds == [1])
            #expect(replies.first?.response.generation == unary.generation)
        }
    }

    @Test("a call id reused while in flight ends the stream with INVALID_ARGUMENT naming call_id")
    func reusedCallIDEndsTheStream() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let epoch = try await register(client, 3)
            let error = await #expect(throws: RPCError.self) {
                try await client.barrierStream(
                    requestProducer: { writer in
                        let call = Dtruntime_V1_BarrierStreamCall.with {
                            $0.callID = 7
                            $0.arrival = barrierRequest("w0", epoch: epoch)
                        }
                        try await writer.write(.with { $0.calls = [call, call] })
                    },
                    onResponse: { response in
                        for try await _ in response.messages {}
                    })
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("call_id") == true)
        }
    }
}

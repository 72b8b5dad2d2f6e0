import Coordinator
import GRPCCore
import RuntimeCore
import RuntimeProto
import Storage
import Testing

/// Worker secrets over gRPC, with the engine issuing real ones (`Harness(sharedSecret: nil)`): every call that names
/// a worker is refused without that worker's secret and changes nothing; with it, the same call succeeds.
@Suite("gRPC worker secrets (in-process)")
struct WorkerSecretRPCTests {
    static func expectRefused(
        _ reason: ErrorReason = .workerSecretWrong, sourceLocation: SourceLocation = #_sourceLocation,
        _ call: () async throws -> Void
    ) async {
        let error = await #expect(throws: RPCError.self, sourceLocation: sourceLocation) { try await call() }
        #expect(error?.code == .permissionDenied, sourceLocation: sourceLocation)
        let sent = error?.metadata[stringValues: "dtr-reason"].first(where: { _ in true })
        #expect(sent == reason.rawValue, "\(String(describing: error))", sourceLocation: sourceLocation)
    }

    static func secret(_ value: String) -> Metadata { ["dtr-worker-secret": "\(value)"] }

    @Test("every call naming a worker is refused without its secret or with another; with it, each succeeds")
    func everyCall() async throws {
        let harness = try Harness(sharedSecret: nil)
        try await harness.withClient { client in
            let victim = try await client.registerWorker(registration("victim"))
            let secret = victim.workerSecret
            #expect(secret.count == 64 && secret.allSatisfy(\.isHexDigit))
            let epoch = victim.view.membershipEpoch
            let own = Self.secret(secret)
            _ = try await client.registerDataset(datasetRequest("digits", total: 40, shardSize: 10))
            let assignment = Dtruntime_V1_GetShardAssignmentRequest.with {
                $0.dataset = "digits"
                $0.workerID = "victim"
            }
            let shard = try await client.getShardAssignment(assignment, metadata: own).shards[0].shardID
            let progress = Dtruntime_V1_ReportShardProgressRequest.with {
                $0.dataset = "digits"
                $0.workerID = "victim"
                $0.membershipEpoch = epoch
                $0.shardID = shard
                $0.consumed = 10
            }
            let save = Dtruntime_V1_SaveCheckpointRequest.with {
                $0.workerID = "victim"
                $0.membershipEpoch = epoch
                $0.step = 1
            }
            let ticket = try await client.saveCheckpoint(save, metadata: own)
            let abort = Dtruntime_V1_ReportCheckpointPartRequest.with {
                $0.workerID = "victim"
                $0.checkpointID = ticket.checkpointID
                $0.failure = "sabotage"
            }
            let restore = Dtruntime_V1_LoadCheckpointRequest.with {
                $0.workerID = "victim"
                $0.latest = true
                $0.restoreData = true
            }
            let leave = Dtruntime_V1_DeregisterWorkerRequest.with { $0.workerID = "victim" }
            let arrival = barrierRequest("victim", epoch: epoch)
            for metadata in [Metadata(), Self.secret(String(repeating: "0", count: 64)), Self.secret(secret + "0")] {
                await Self.expectRefused { _ = try await client.heartbeat(heartbeat("victim"), metadata: metadata) }
                await Self.expectRefused { _ = try await client.getShardAssignment(assignment, metadata: metadata) }
                await Self.expectRefused { _ = try await client.reportShardProgress(progress, metadata: metadata) }
                await Self.expectRefused { _ = try await client.saveCheckpoint(save, metadata: metadata) }
                await Self.expectRefused { _ = try await client.reportCheckpointPart(abort, metadata: metadata) }
                await Self.expectRefused { _ = try await client.loadCheckpoint(restore, metadata: metadata) }
                await Self.expectRefused { _ = try await client.barrierSync(arrival, metadata: metadata) }
                await Self.expectRefused { _ = try await client.deregisterWorker(leave, metadata: metadata) }
                await Self.expectRefused(.workerIdInUse) {
                    _ = try await client.registerWorker(registration("victim"), metadata: metadata)
                }
                await Self.expectRefused {
                    try await client.workerSession(
                        metadata: metadata,
                        requestProducer: { try await $0.write(.with { $0.heartbeat = heartbeat("victim") }) },
                        onResponse: { for try await _ in $0.messages {} })
                }
            }
            // On a BarrierStream the call's own secret counts: refused without, released with it.
            let streamed = try await client.barrierStream(
                requestProducer: { writer in
                    try await writer.write(
                        .with {
                            $0.calls = [
                                .with {
                                    $0.callID = 1
                                    $0.arrival = arrival
                                }
                            ]
                        })
                    var own = arrival
                    own.workerSecret = secret
                    try await writer.write(
                        .with {
                            $0.calls = [
                                .with {
                                    $0.callID = 2
                                    $0.arrival = own
                                }
                            ]
                        })
                },
                onResponse: { response in
                    var replies: [Dtruntime_V1_BarrierStreamReply] = []
                    for try await reply in response.messages { replies.append(reply) }
                    return replies
                })
            #expect(streamed.map(\.callIds) == [[1], [2]])
            #expect(streamed.first?.metadata["dtr-reason"] == "WORKER_SECRET_WRONG")
            #expect(streamed.last?.hasResponse == true)

            // Nothing changed: the victim is healthy at its epoch, its shard unread, its checkpoint pending.
            let snapshot = await harness.engine.workers().first
            #expect(snapshot?.health == .healthy && snapshot?.record.spec.taskID == .default)
            #expect(try await client.getShardAssignment(assignment, metadata: own).shards.first?.consumed == 0)
            #expect(await harness.engine.checkpointRecords().map(\.status) == [.pending])

            // With the secret, each call succeeds.
            #expect(try await client.heartbeat(heartbeat("victim"), metadata: own).view.membershipEpoch == epoch)
            #expect(try await client.reportShardProgress(progress, metadata: own).consumed == 10)
            #expect(try await client.reportCheckpointPart(abort, metadata: own).status == .aborted)
            #expect(try await client.barrierSync(arrival, metadata: own).participantCount == 1)
            let again = try await client.registerWorker(registration("victim"), metadata: own)
            #expect(again.workerSecret == secret && again.view.membershipEpoch == epoch)
            try await withSession(client, metadata: own) { probe in
                let ack = try await probe.heartbeatAck("victim")
                #expect(ack.view.rank == 0)
            }
            #expect(try await client.deregisterWorker(leave, metadata: own).membershipEpoch == epoch + 1)
        }
    }

    @Test("only the secret's SHA-256 is stored, and it stays valid across a restart of the coordinator")
    func persisted() async throws {
        let harness = try Harness(sharedSecret: nil)
        let secret = try await harness.withClient { client in
            try await client.registerWorker(registration("w0")).workerSecret
        }
        let records = try SQLiteStateStore(path: harness.directory.databasePath).loadMembership().records
        let stored = try #require(records.first?.secretDigest)
        #expect(stored == WorkerSecret.digest(secret) && stored.bytes.count == 32 && stored.bytes != Array(secret.utf8))
        let restarted = try Harness(directory: harness.directory, sharedSecret: nil)
        try await restarted.withClient { client in
            let reply = try await client.heartbeat(heartbeat("w0"), metadata: Self.secret(secret))
            #expect(reply.view.rank == 0)
            await Self.expectRefused { _ = try await client.heartbeat(heartbeat("w0")) }
        }
    }

    @Test("secrets are 256 bits, different every time")
    func issued() {
        let secrets = Set((0..<1000).map { _ in WorkerSecret.issue() })
        #expect(secrets.count == 1000 && secrets.allSatisfy { $0.count == 64 && $0.allSatisfy(\.isHexDigit) })
    }
}

import Checkpoint
import Coordinator
import Foundation
import GRPCCore
import RuntimeCore
import RuntimeProto
import Storage
import Testing

func saveRequest(
    _ worker: String, step: Int64, epoch: Int64 = 0, membershipEpoch: UInt64, metrics: [String: Double] = [:]
) -> Dtruntime_V1_SaveCheckpointRequest {
    .with {
        $0.workerID = worker
        $0.step = step
        $0.epoch = epoch
        $0.membershipEpoch = membershipEpoch
        $0.metrics = metrics
    }
}

func partReport(
    _ worker: String, _ checkpoint: String, size: Int64, sha: String = String(repeating: "ab", count: 32),
    wait: Bool = false, failure: String = ""
) -> Dtruntime_V1_ReportCheckpointPartRequest {
    .with {
        $0.workerID = worker
        $0.checkpointID = checkpoint
        $0.sizeBytes = size
        $0.sha256 = sha
        $0.writeSeconds = 0.5
        $0.wait = wait
        $0.failure = failure
    }
}

extension Harness {
    /// Writes a part where the grant says, as a worker would (whole, at the final key).
    func writePart(_ grant: Dtruntime_V1_SaveCheckpointResponse, bytes: Int) throws {
        #expect(grant.store.uri == "file://" + directory.checkpointsPath)
        let url = URL(fileURLWithPath: directory.checkpointsPath).appendingPathComponent(grant.objectKey)
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(repeating: 7, count: bytes).write(to: url)
    }

    func fileExists(_ key: String) -> Bool {
        FileManager.default.fileExists(atPath: (directory.checkpointsPath as NSString).appendingPathComponent(key))
    }

    /// Waits until the engine's background work (manifest writes, deletes) has settled into `condition`.
    func eventually(_ condition: () async throws -> Bool) async throws {
        for _ in 0..<400 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("condition not met within 4 s")
    }
}

@Suite("gRPC checkpoints (in-process, real local store)")
struct CheckpointRPCTests {
    @Test("two ranks save a step: keys from the coordinator, commit after the last part, manifest on disk, loadable")
    func commit() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("w0"))
            let epoch = try await client.registerWorker(registration("w1")).view.membershipEpoch
            let g0 = try await client.saveCheckpoint(
                saveRequest("w0", step: 100, epoch: 1, membershipEpoch: epoch, metrics: ["loss": 0.5]))
            let g1 = try await client.saveCheckpoint(saveRequest("w1", step: 100, epoch: 1, membershipEpoch: epoch))
            #expect(g0.checkpointID == "default/step-000000000100-a1" && g1.checkpointID == g0.checkpointID)
            #expect(g0.rank == 0 && g1.rank == 1 && g0.worldSize == 2)
            #expect(g0.objectKey == "default/step-000000000100-a1/rank-00000.part")
            #expect(g1.objectKey == "default/step-000000000100-a1/rank-00001.part")
            #expect(g0.deadlineUnixMs == harness.clock.now.unixMillis + 60_000)
            try harness.writePart(g0, bytes: 1000)
            try harness.writePart(g1, bytes: 24)

            // Rank 0 waits for the commit; rank 1's report completes it.
            async let waited = client.reportCheckpointPart(partReport("w0", g0.checkpointID, size: 1000, wait: true))
            try await harness.eventually { await harness.engine.checkpointRecords().first?.parts.count == 1 }
            let last = try await client.reportCheckpointPart(partReport("w1", g0.checkpointID, size: 24))
            #expect(last.reportedParts == 2 && last.worldSize == 2)
            let committed = try await waited
            #expect(committed.status == .committed)
            #expect(committed.manifest.parts.map(\.sizeBytes) == [1000, 24])
            #expect(committed.manifest.metrics == ["loss": 0.5] && committed.manifest.epoch == 1)

            let manifestKey = "default/step-000000000100-a1/manifest.json"
            #expect(committed.manifest.manifestKey == manifestKey)
            let json = try JSONSerialization.jsonObject(
                with: Data(try await harness.checkpointStore.get(try ObjectKey(manifestKey))))
            let manifest = try #require(json as? [String: Any])
            #expect(manifest["format"] as? String == "dtruntime.checkpoint-manifest.v1")
            #expect(manifest["checkpoint_id"] as? String == g0.checkpointID)
            #expect(
                (manifest["parts"] as? [[String: Any]])?.map { $0["object_key"] as? String } == [
                    g0.objectKey, g1.objectKey,
                ])

            let loaded = try await client.loadCheckpoint(.with { $0.workerID = "w1" })
            #expect(loaded.manifest.checkpointID == g0.checkpointID && !loaded.dataRestored)
            let byStep = try await client.loadCheckpoint(.with { $0.step = 100 })
            #expect(byStep.manifest.step == 100)
            let missing = await #expect(throws: RPCError.self) {
                try await client.loadCheckpoint(.with { $0.step = 99 })
            }
            #expect(missing?.code == .notFound)
            #expect(missing?.message == "task default has no committed checkpoint at step 99")
        }
    }

    @Test("a part smaller in the store than reported aborts the checkpoint and deletes every part")
    func sizeMismatch() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("w0"))
            let epoch = try await client.registerWorker(registration("w1")).view.membershipEpoch
            let g0 = try await client.saveCheckpoint(saveRequest("w0", step: 1, membershipEpoch: epoch))
            let g1 = try await client.saveCheckpoint(saveRequest("w1", step: 1, membershipEpoch: epoch))
            try harness.writePart(g0, bytes: 10)
            try harness.writePart(g1, bytes: 10)
            _ = try await client.reportCheckpointPart(partReport("w0", g0.checkpointID, size: 10))
            let error = await #expect(throws: RPCError.self) {
                try await client.reportCheckpointPart(partReport("w1", g1.checkpointID, size: 11))
            }
            #expect(error?.code == .failedPrecondition)
            #expect(
                error?.message
                    == "reported 11 bytes but the store holds 10 bytes at \(g1.objectKey): the part is incomplete, "
                    + "so checkpoint \(g1.checkpointID) is aborted; save again")
            try await harness.eventually { !harness.fileExists(g0.objectKey) && !harness.fileExists(g1.objectKey) }
            let record = try #require(await harness.engine.checkpointRecords().first)
            #expect(record.status == .aborted)
            let load = await #expect(throws: RPCError.self) { try await client.loadCheckpoint(.init()) }
            #expect(load?.code == .notFound)
            let retry = try await client.saveCheckpoint(saveRequest("w0", step: 1, membershipEpoch: epoch))
            #expect(retry.checkpointID == "default/step-000000000001-a2")
        }
    }

    @Test("a rank that cannot write aborts at once; waiting ranks hear why")
    func failure() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("w0"))
            let epoch = try await client.registerWorker(registration("w1")).view.membershipEpoch
            let g0 = try await client.saveCheckpoint(saveRequest("w0", step: 5, membershipEpoch: epoch))
            let g1 = try await client.saveCheckpoint(saveRequest("w1", step: 5, membershipEpoch: epoch))
            try harness.writePart(g0, bytes: 3)
            async let waited = client.reportCheckpointPart(partReport("w0", g0.checkpointID, size: 3, wait: true))
            try await harness.eventually { await harness.engine.checkpointRecords().first?.parts.count == 1 }
            let failed = try await client.reportCheckpointPart(
                partReport("w1", g1.checkpointID, size: 0, sha: "", failure: "No space left on device"))
            #expect(failed.status == .aborted)
            let answer = try await waited
            #expect(answer.status == .aborted)
            #expect(answer.abortReason == "rank 1 (worker w1) could not write its part: No space left on device")
            try await harness.eventually { !harness.fileExists(g0.objectKey) }
        }
    }

    @Test("the deadline aborts a checkpoint naming the missing rank; a worker's death aborts it naming the worker")
    func timeoutAndDeath() async throws {
        let harness = try Harness()  // dead after 5 s, checkpoints time out after 60 s
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("w0"))
            let epoch = try await client.registerWorker(registration("w1")).view.membershipEpoch
            let g0 = try await client.saveCheckpoint(saveRequest("w0", step: 1, membershipEpoch: epoch))
            try harness.writePart(g0, bytes: 3)
            _ = try await client.reportCheckpointPart(partReport("w0", g0.checkpointID, size: 3))
            for _ in 0..<30 {
                harness.clock.advance(.seconds(2))
                _ = try await client.heartbeat(heartbeat("w0"))
                _ = try await client.heartbeat(heartbeat("w1"))
                await harness.engine.tick()
            }
            var records = await harness.engine.checkpointRecords()
            #expect(records.first?.status == .aborted)
            #expect(records.first?.abortReason == "timed out after 60.0 seconds waiting for the parts of rank 1")
            try await harness.eventually { !harness.fileExists(g0.objectKey) }

            let second = try await client.saveCheckpoint(saveRequest("w1", step: 2, membershipEpoch: epoch))
            for _ in 0..<4 {
                harness.clock.advance(.seconds(2))
                _ = try await client.heartbeat(heartbeat("w1"))
                await harness.engine.tick()
            }
            records = await harness.engine.checkpointRecords()
            let aborted = try #require(records.first { $0.id.description == second.checkpointID })
            #expect(aborted.status == .aborted)
            #expect(
                aborted.abortReason?.contains("(w0 declared dead after 5.0 seconds without heartbeats)") == true,
                "\(aborted.abortReason ?? "")")
            #expect(aborted.abortReason?.hasSuffix("ranks no longer held as opened: rank 1 (worker w1)") == true)
        }
    }

    @Test("bad requests name the field and change nothing")
    func badInput() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let epoch = try await client.registerWorker(registration("w0")).view.membershipEpoch
            let saves: [(Dtruntime_V1_SaveCheckpointRequest, String)] = [
                (saveRequest("w0", step: -1, membershipEpoch: epoch), "step must be >= 0 (got -1)"),
                (saveRequest("w0", step: 1, epoch: -2, membershipEpoch: epoch), "epoch must be >= 0 (got -2)"),
                (saveRequest("w 0", step: 1, membershipEpoch: epoch), "worker_id must be 1-128 printable ASCII"),
                (
                    saveRequest("w0", step: 1, membershipEpoch: epoch + 5),
                    "membership_epoch must not be ahead of task default's current membership epoch"
                ),
            ]
            for (request, message) in saves {
                let error = await #expect(throws: RPCError.self) { try await client.saveCheckpoint(request) }
                #expect(error?.code == .invalidArgument, "\(message)")
                #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "") vs \(message)")
            }
            let nan = await #expect(throws: RPCError.self) {
                try await client.saveCheckpoint(
                    saveRequest("w0", step: 1, membershipEpoch: epoch, metrics: ["loss": .nan]))
            }
            #expect(nan?.code == .invalidArgument)
            #expect(nan?.message.hasPrefix("metrics[loss] must be a finite number") == true)
            let unknown = await #expect(throws: RPCError.self) {
                try await client.saveCheckpoint(saveRequest("ghost", step: 1, membershipEpoch: epoch))
            }
            #expect(unknown?.code == .notFound)
            #expect(await harness.engine.checkpointRecords().isEmpty)

            let grant = try await client.saveCheckpoint(saveRequest("w0", step: 1, membershipEpoch: epoch))
            let reports: [(Dtruntime_V1_ReportCheckpointPartRequest, RPCError.Code, String)] = [
                (
                    partReport("w0", "../../etc/passwd", size: 1), .invalidArgument,
                    "checkpoint_id must be a checkpoint id"
                ),
                (partReport("w0", grant.checkpointID, size: -1), .invalidArgument, "size_bytes must be >= 0 (got -1)"),
                (
                    partReport("w0", grant.checkpointID, size: 1, sha: "XYZ"), .invalidArgument,
                    "sha256 must be 64 lower-case hex digits"
                ),
                (
                    partReport("w0", "default/step-000000000009-a1", size: 1), .notFound,
                    "no checkpoint default/step-000000000009-a1"
                ),
                (
                    partReport("w0", grant.checkpointID, size: 1), .failedPrecondition,
                    "reported 1 bytes but the store holds nothing at \(grant.objectKey)"
                ),
            ]
            for (request, code, message) in reports.dropLast() {
                let error = await #expect(throws: RPCError.self) { try await client.reportCheckpointPart(request) }
                #expect(error?.code == code && error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
            }
            #expect(await harness.engine.checkpointRecords().first?.status == .pending, "nothing changed")
            let (request, code, message) = try #require(reports.last)
            let error = await #expect(throws: RPCError.self) { try await client.reportCheckpointPart(request) }
            #expect(error?.code == code && error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
        }
    }

    @Test("a worker with a stale membership epoch may not save: its rank may have changed")
    func staleEpoch() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let old = try await client.registerWorker(registration("w0")).view.membershipEpoch
            _ = try await client.registerWorker(registration("w1"))
            let error = await #expect(throws: RPCError.self) {
                try await client.saveCheckpoint(saveRequest("w0", step: 1, membershipEpoch: old))
            }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message.hasPrefix("membership_epoch \(old) is stale: task default is at \(old + 1)") == true)
            #expect(await harness.engine.checkpointRecords().isEmpty)
        }
    }

    @Test("the sweep deletes what an aborted checkpoint's slow writer left, and never objects it does not know")
    func sweep() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let epoch = try await client.registerWorker(registration("w0")).view.membershipEpoch
            let grant = try await client.saveCheckpoint(saveRequest("w0", step: 3, membershipEpoch: epoch))
            _ = try await client.reportCheckpointPart(
                partReport("w0", grant.checkpointID, size: 0, sha: "", failure: "killed"))
            try await harness.eventually { await harness.engine.checkpointRecords().first?.status == .aborted }
            // The writer finishes after the abort; another coordinator's checkpoint shares the store.
            try harness.writePart(grant, bytes: 4)
            let foreign = "default/step-000000000099-a1/rank-00000.part"
            try harness.writePart(
                .with {
                    $0.store = grant.store
                    $0.objectKey = foreign
                }, bytes: 4)
            await harness.engine.sweepCheckpointStore()
            #expect(!harness.fileExists(grant.objectKey))
            #expect(harness.fileExists(foreign))
        }
    }

    @Test("the sweep lists a task's objects only once the task has an aborted or retired checkpoint")
    func sweepListsOnlyWhatCanBeStale() async throws {
        let listings = Listings()
        let harness = try Harness(wrappingCheckpointStore: { ListingRecorder(store: $0, listings: listings) })
        try await harness.withClient { client in
            let epoch = try await client.registerWorker(registration("w0")).view.membershipEpoch
            let grant = try await client.saveCheckpoint(saveRequest("w0", step: 1, membershipEpoch: epoch))
            try harness.writePart(grant, bytes: 1)
            _ = try await client.reportCheckpointPart(partReport("w0", grant.checkpointID, size: 1, wait: true))
            #expect(await harness.engine.checkpointRecords().map(\.status) == [.committed])
            // Only committed checkpoints: nothing of the task can be stale, so the sweep lists nothing.
            let before = listings.count("default")
            await harness.engine.sweepCheckpointStore()
            #expect(listings.count("default") == before)
            let failed = try await client.saveCheckpoint(saveRequest("w0", step: 2, membershipEpoch: epoch))
            _ = try await client.reportCheckpointPart(
                partReport("w0", failed.checkpointID, size: 0, sha: "", failure: "killed"))
            try await harness.eventually { await harness.engine.checkpointRecords().contains { $0.status == .aborted } }
            let beforeAborted = listings.count("default")
            await harness.engine.sweepCheckpointStore()
            #expect(listings.count("default") == beforeAborted + 1)
            // The committed checkpoint's part is not the sweep's to delete.
            #expect(harness.fileExists(grant.objectKey))
        }
    }

    @Test("a restarted coordinator sweeps at its first tick what a crash left of an aborted checkpoint")
    func sweepAtFirstTick() async throws {
        let directory = TemporaryDirectory()
        let grant: Dtruntime_V1_SaveCheckpointResponse
        do {
            let harness = try Harness(directory: directory)
            grant = try await harness.withClient { client in
                let epoch = try await client.registerWorker(registration("w0")).view.membershipEpoch
                let grant = try await client.saveCheckpoint(saveRequest("w0", step: 3, membershipEpoch: epoch))
                _ = try await client.reportCheckpointPart(
                    partReport("w0", grant.checkpointID, size: 0, sha: "", failure: "killed"))
                try await harness.eventually { try harness.store.loadCheckpoints().first?.status == .aborted }
                return grant
            }
        }
        // The crash came after the abort was durable and before its objects were deleted: they are still there.
        let restarted = try Harness(directory: directory)
        try restarted.writePart(grant, bytes: 4)
        // The sweep is an effect: it runs in the engine's effect runner, as the engine service runs it.
        let effects = restarted.engine.effects
        let runner = Task { await effects.run() }
        await restarted.engine.tick()  // the first tick, long before a sweep interval has passed
        try await restarted.eventually { !restarted.fileExists(grant.objectKey) }
        effects.stop()
        await runner.value
    }

    @Test("restoring the data position needs a member of the task")
    func restoreNeedsMember() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let epoch = try await client.registerWorker(registration("w0")).view.membershipEpoch
            let grant = try await client.saveCheckpoint(saveRequest("w0", step: 1, membershipEpoch: epoch))
            try harness.writePart(grant, bytes: 1)
            _ = try await client.reportCheckpointPart(partReport("w0", grant.checkpointID, size: 1, wait: true))
            let error = await #expect(throws: RPCError.self) {
                try await client.loadCheckpoint(.with { $0.restoreData = true })
            }
            #expect(error?.code == .failedPrecondition)
            #expect(error?.message.contains("needs the worker_id of a member of task default") == true)
        }
    }

    @Test("the data position is recorded with the checkpoint, and restoring it rewinds the ledger once")
    func dataPosition() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let epoch = try await client.registerWorker(registration("w0")).view.membershipEpoch
            _ = try await client.registerDataset(datasetRequest("digits", total: 1000, shardSize: 100))
            let shards = try await client.getShardAssignment(assignmentRequest("digits", "w0")).shards
            let (first, second) = (shards[0].shardID, shards[1].shardID)
            _ = try await client.reportShardProgress(
                progress("digits", "w0", shard: first, consumed: 100, membershipEpoch: epoch))
            _ = try await client.reportShardProgress(
                progress("digits", "w0", shard: second, consumed: 40, membershipEpoch: epoch))

            let grant = try await client.saveCheckpoint(saveRequest("w0", step: 7, membershipEpoch: epoch))
            try harness.writePart(grant, bytes: 5)
            let committed = try await client.reportCheckpointPart(
                partReport("w0", grant.checkpointID, size: 5, wait: true))
            let position = try #require(committed.manifest.datasets.first)
            #expect(position.dataset == "digits" && position.epoch == 0)
            #expect(position.doneShardIds == [first])
            #expect(position.partial.map { [$0.shardID, $0.consumed] } == [[second, 40]])

            // Training goes on past the checkpoint, then the job restarts from it.
            _ = try await client.reportShardProgress(
                progress("digits", "w0", shard: second, consumed: 100, membershipEpoch: epoch))
            let restored = try await client.loadCheckpoint(
                .with {
                    $0.workerID = "w0"
                    $0.restoreData = true
                })
            #expect(restored.dataRestored)
            let again = try await client.loadCheckpoint(
                .with {
                    $0.workerID = "w0"
                    $0.restoreData = true
                })
            #expect(!again.dataRestored, "a second restore at the same membership epoch is a no-op")
            let resumed = try await client.getShardAssignment(assignmentRequest("digits", "w0"))
            #expect(resumed.doneShards == 1 && resumed.totalShards == 10)
            let cursor = try #require(resumed.shards.first { $0.shardID == second })
            #expect(cursor.consumed == 40, "the shard resumes where the checkpoint left it")
            #expect(!resumed.shards.contains { $0.shardID == first })
        }
    }

    @Test("after a restart, a checkpoint whose parts were all reported commits; one that was not stays invisible")
    func restart() async throws {
        let directory = TemporaryDirectory()
        let ids: [String]
        do {
            let harness = try Harness(directory: directory)
            ids = try await harness.withClient { client in
                let epoch = try await client.registerWorker(registration("w0")).view.membershipEpoch
                var ids: [String] = []
                for step: Int64 in [1, 2] {
                    let grant = try await client.saveCheckpoint(saveRequest("w0", step: step, membershipEpoch: epoch))
                    try harness.writePart(grant, bytes: 8)
                    ids.append(grant.checkpointID)
                }
                return ids
            }
            // Step 1's part is reported, but the coordinator "crashes" before the manifest is written: record the
            // report straight in the database, as the engine would have just before the crash.
            var records = try harness.store.loadCheckpoints()
            records[0].parts[0] = .init(sizeBytes: 8, sha256: String(repeating: "0", count: 64), writeSeconds: 0)
            try await harness.store.commit([.checkpoint(records[0])])
        }
        let restarted = try Harness(directory: directory)
        try await restarted.withClient { client in
            try await restarted.eventually { await restarted.engine.checkpointRecords().first?.status == .committed }
            let loaded = try await client.loadCheckpoint(.init())
            #expect(loaded.manifest.checkpointID == ids[0])
            #expect(restarted.fileExists("default/step-000000000001-a1/manifest.json"))
            #expect(await restarted.engine.checkpointRecords().last?.status == .pending)
        }
    }
}

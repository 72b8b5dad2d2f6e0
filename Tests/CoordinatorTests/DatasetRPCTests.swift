import Coordinator
import GRPCCore
import Logging
import RuntimeCore
import RuntimeProto
import Storage
import Testing

func datasetRequest(
    _ name: String, total: Int64 = 1000, shardSize: Int64 = 100, shuffle: Bool = true, seed: UInt64 = 7
) -> Dtruntime_V1_RegisterDatasetRequest {
    .with {
        $0.spec = .with {
            $0.name = name
            $0.totalSamples = total
            $0.shardSize = shardSize
            $0.shuffle = shuffle
            $0.seed = seed
        }
    }
}

func assignmentRequest(_ dataset: String, _ worker: String, epoch: Int64 = 0) -> Dtruntime_V1_GetShardAssignmentRequest
{
    .with {
        $0.dataset = dataset
        $0.workerID = worker
        $0.epoch = epoch
    }
}

func progress(
    _ dataset: String, _ worker: String, shard: Int64, consumed: Int64, epoch: Int64 = 0, membershipEpoch: UInt64
) -> Dtruntime_V1_ReportShardProgressRequest {
    .with {
        $0.dataset = dataset
        $0.workerID = worker
        $0.epoch = epoch
        $0.shardID = shard
        $0.consumed = consumed
        $0.membershipEpoch = membershipEpoch
    }
}

@Suite("gRPC datasets and shards (in-process)")
struct DatasetRPCTests {
    @Test("registration is idempotent for the same spec and records when it happened; another spec is refused")
    func register() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let first = try await client.registerDataset(datasetRequest("mnist"))
            #expect(first.created && first.numShards == 10)
            #expect(first.registeredAtUnixMs == harness.clock.now.unixMillis)
            harness.clock.advance(.seconds(5))
            let again = try await client.registerDataset(datasetRequest("mnist"))
            #expect(!again.created && again.registeredAtUnixMs == first.registeredAtUnixMs)
            let clash = await #expect(throws: RPCError.self) {
                try await client.registerDataset(datasetRequest("mnist", shardSize: 50))
            }
            #expect(clash?.code == .failedPrecondition)
            #expect(clash?.message.contains("already registered with total_samples=1000, shard_size=100") == true)
        }
    }

    @Test("bad dataset requests name the field and rule")
    func badInput() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("w"))
            let registrations: [(Dtruntime_V1_RegisterDatasetRequest, String)] = [
                (datasetRequest("d", total: 0), "total_samples must be between 1 and 2^40 (got 0)"),
                (datasetRequest("d", total: (1 << 40) + 1), "total_samples must be between 1 and 2^40"),
                (datasetRequest("d", shardSize: 0), "shard_size must be between 1 and total_samples (1000) (got 0)"),
                (datasetRequest("d", shardSize: 1001), "shard_size must be between 1 and total_samples (1000)"),
                (datasetRequest(""), "name must be 1-128 characters of [A-Za-z0-9._-]"),
                (datasetRequest(String(repeating: "n", count: 129)), "name must be 1-128 characters"),
                (datasetRequest("../x"), "name must be 1-128 characters of [A-Za-z0-9._-]"),
                (.init(), "spec must be set"),
            ]
            for (request, message) in registrations {
                let error = await #expect(throws: RPCError.self) { try await client.registerDataset(request) }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
            }
            _ = try await client.registerDataset(datasetRequest("d"))
            let unknown = await #expect(throws: RPCError.self) {
                try await client.getShardAssignment(assignmentRequest("nope", "w"))
            }
            #expect(unknown?.code == .notFound && unknown?.message.contains("DatasetRegistry.register") == true)
            let negative = await #expect(throws: RPCError.self) {
                try await client.getShardAssignment(assignmentRequest("d", "w", epoch: -1))
            }
            #expect(negative?.message == "epoch must be >= 0 (got -1)")
            let early = await #expect(throws: RPCError.self) {
                try await client.reportShardProgress(progress("d", "w", shard: 0, consumed: 1, membershipEpoch: 1))
            }
            #expect(early?.code == .notFound)
            _ = try await client.getShardAssignment(assignmentRequest("d", "w"))
            let missing = await #expect(throws: RPCError.self) {
                try await client.reportShardProgress(progress("d", "w", shard: 10, consumed: 1, membershipEpoch: 1))
            }
            #expect(
                missing?.code == .invalidArgument && missing?.message == "shard_id must be between 0 and 9 (got 10)")
        }
    }

    @Test("two workers split the shards; progress resumes from the cursor; a finished worker steals")
    func assignAndResume() async throws {
        let harness = try Harness()
        try await harness.withClient { client in
            let a = try await client.registerWorker(registration("a")).view.membershipEpoch
            let b = try await client.registerWorker(registration("b")).view.membershipEpoch
            _ = try await client.registerDataset(datasetRequest("d", total: 2000, shardSize: 100))
            let forA = try await client.getShardAssignment(assignmentRequest("d", "a"))
            let forB = try await client.getShardAssignment(assignmentRequest("d", "b"))
            #expect(forA.totalShards == 20 && forA.membershipEpoch == b)
            #expect(Set(forA.shards.map(\.shardID)).isDisjoint(with: forB.shards.map(\.shardID)))
            #expect(forA.shards.count + forB.shards.count == 20)
            _ = a

            let first = try #require(forA.shards.first)
            #expect(first.end - first.start == 100 && first.consumed == 0)
            _ = try await client.reportShardProgress(
                progress("d", "a", shard: first.shardID, consumed: 40, membershipEpoch: b))
            let resumed = try await client.getShardAssignment(assignmentRequest("d", "a"))
            #expect(resumed.shards.first { $0.shardID == first.shardID }?.consumed == 40)

            for shard in forA.shards {
                let reply = try await client.reportShardProgress(
                    progress("d", "a", shard: shard.shardID, consumed: 100, membershipEpoch: b))
                #expect(reply.done)
            }
            let stolen = try await client.getShardAssignment(assignmentRequest("d", "a"))
            #expect(stolen.shards.count == (forB.shards.count + 1) / 2)
            #expect(stolen.doneShards == Int64(forA.shards.count))
            let left = try await client.getShardAssignment(assignmentRequest("d", "b"))
            #expect(Set(left.shards.map(\.shardID)).isDisjoint(with: stolen.shards.map(\.shardID)))
        }
    }

    @Test("a ledger synced off the actor after a join and a leave: calls wait for it, shards stay exactly once")
    func syncOffActor() async throws {
        let directory = TemporaryDirectory()
        let finalEpoch: UInt64
        do {
            // Every ledger is synced off the actor (the default is ledgers of 2^20 shards and more).
            let harness = try Harness(directory: directory, offActorSyncShards: 0)
            finalEpoch = try await harness.withClient { client in
                let alone = try await client.registerWorker(registration("a")).view.membershipEpoch
                _ = try await client.registerDataset(datasetRequest("d", total: 2000, shardSize: 100))
                let first = try await client.getShardAssignment(assignmentRequest("d", "a"))
                #expect(first.shards.count == 20)
                let started = try #require(first.shards.first)
                _ = try await client.reportShardProgress(
                    progress("d", "a", shard: started.shardID, consumed: 40, membershipEpoch: alone))

                // The join syncs the ledger off the actor; both assignments wait for it and split the shards.
                let joined = try await client.registerWorker(registration("b")).view.membershipEpoch
                async let forB = client.getShardAssignment(assignmentRequest("d", "b"))
                let forA = try await client.getShardAssignment(assignmentRequest("d", "a"))
                let b = try await forB
                #expect(forA.membershipEpoch == joined && b.membershipEpoch == joined)
                #expect(!b.shards.isEmpty && !forA.shards.isEmpty)
                #expect(Set(forA.shards.map(\.shardID)).isDisjoint(with: b.shards.map(\.shardID)))
                #expect(forA.shards.count + b.shards.count == 20)
                #expect(forA.shards.first { $0.shardID == started.shardID }?.consumed == 40)

                // A report right after the leave (no other call between) waits for the sync back, then counts.
                let left = try await client.deregisterWorker(.with { $0.workerID = "b" }).membershipEpoch
                let reported = try await client.reportShardProgress(
                    progress("d", "a", shard: started.shardID, consumed: 100, membershipEpoch: left))
                #expect(reported.done)
                let after = try await client.getShardAssignment(assignmentRequest("d", "a"))
                #expect(after.membershipEpoch == left && after.shards.count == 19)
                return left
            }
            // What the syncs changed was written: the stored ledger followed the members to the last epoch (a
            // restart would otherwise re-derive the moves and hide a lost write).
            let stored = try #require(try harness.store.loadData().ledgers.first)
            #expect(stored.membershipEpoch == finalEpoch && stored.members.map(\.rawValue) == ["a"])
        }
        // And a restart resumes the same position.
        let restarted = try Harness(directory: directory, offActorSyncShards: 0)
        try await restarted.withClient { client in
            let resumed = try await client.getShardAssignment(assignmentRequest("d", "a"))
            #expect(resumed.membershipEpoch == finalEpoch)
            #expect(resumed.shards.count == 19 && resumed.doneShards == 1)
        }
    }

    @Test("a worker restart on a ledger synced off the actor (for its shards or its members) ends its old leases")
    func restartSyncedOffActor() async throws {
        let defaults = (CoordinatorEngine.defaultOffActorSyncShards, CoordinatorEngine.defaultOffActorSyncMembers)
        for (shards, members) in [(0, defaults.1), (defaults.0, 1), defaults] {
            let offActor = "off the actor from \(shards) shards or \(members) members"
            // The engine's log says when a ledger was synced off the actor (and only then).
            let log = LogBuffer()
            let logger = Logger(label: "dtr") {
                CoordinatorLogHandler(label: $0, level: .info, format: .text, buffer: log, sink: { _ in })
            }
            let harness = try Harness(offActorSyncShards: shards, offActorSyncMembers: members, logger: logger)
            try await harness.withClient { client in
                _ = try await client.registerWorker(registration("a"))
                var first = registration("b")
                first.incarnation = "first-process"
                let epoch = try await client.registerWorker(first).view.membershipEpoch
                _ = try await client.registerDataset(datasetRequest("d", total: 2000, shardSize: 100))
                let shard = try #require(try await client.getShardAssignment(assignmentRequest("d", "b")).shards.first)
                _ = try await client.reportShardProgress(
                    progress("d", "b", shard: shard.shardID, consumed: 30, membershipEpoch: epoch))

                // b's process restarts: the old one counts as gone (its leases end), the new one joins again.
                var second = registration("b")
                second.incarnation = "second-process"
                let restarted = try await client.registerWorker(second).view.membershipEpoch
                #expect(restarted == epoch + 2)
                let stale = await #expect(throws: RPCError.self) {
                    _ = try await client.reportShardProgress(
                        progress("d", "b", shard: shard.shardID, consumed: 100, membershipEpoch: epoch))
                }
                #expect(stale?.code == .failedPrecondition, "\(offActor)")
                // The new process reads on from the cursor wherever the shard went; nothing is lost or doubled.
                let forA = try await client.getShardAssignment(assignmentRequest("d", "a"))
                let forB = try await client.getShardAssignment(assignmentRequest("d", "b"))
                #expect(Set(forA.shards.map(\.shardID)).isDisjoint(with: forB.shards.map(\.shardID)))
                #expect(forA.shards.count + forB.shards.count == 20)
                #expect((forA.shards + forB.shards).first { $0.shardID == shard.shardID }?.consumed == 30)
                let synced = log.query(minimumLevel: .info, since: nil, worker: nil, limit: 1000).filter {
                    $0.message == "dataset epoch ledger synced with its task's members"
                }
                #expect(synced.isEmpty == ((shards, members) == defaults), "\(offActor): \(synced.count) synced")
            }
        }
    }

    @Test("a worker joining while a ledger is built gets its share once the ledger is installed and synced")
    func joinDuringBuild() async throws {
        // Every ledger is synced off the actor; 2^18 shards take long enough to build that the join lands meanwhile.
        let harness = try Harness(offActorSyncShards: 0)
        try await harness.withClient { client in
            _ = try await client.registerWorker(registration("a"))
            _ = try await client.registerDataset(datasetRequest("d", total: 1 << 18, shardSize: 1))
            async let first = client.getShardAssignment(assignmentRequest("d", "a"))
            try await Task.sleep(for: .milliseconds(50))
            let joined = try await client.registerWorker(registration("b")).view.membershipEpoch
            _ = try await first
            let forA = try await client.getShardAssignment(assignmentRequest("d", "a"))
            let forB = try await client.getShardAssignment(assignmentRequest("d", "b"))
            #expect(forA.membershipEpoch == joined && forB.membershipEpoch == joined)
            #expect(!forA.shards.isEmpty && !forB.shards.isEmpty)
            #expect(Set(forA.shards.map(\.shardID)).isDisjoint(with: forB.shards.map(\.shardID)))
            #expect(forA.totalShards == 1 << 18)
        }
    }

    @Test("a restarted engine resumes every ledger at the same position")
    func restartResumes() async throws {
        let directory = TemporaryDirectory()
        var before: [Int64: Int64] = [:]
        do {
            let harness = try Harness(directory: directory)
            try await harness.withClient { client in
                let epoch = try await client.registerWorker(registration("a")).view.membershipEpoch
                _ = try await client.registerDataset(datasetRequest("d"))
                let shards = try await client.getShardAssignment(assignmentRequest("d", "a", epoch: 4)).shards
                _ = try await client.reportShardProgress(
                    progress("d", "a", shard: shards[0].shardID, consumed: 100, epoch: 4, membershipEpoch: epoch))
                _ = try await client.reportShardProgress(
                    progress("d", "a", shard: shards[1].shardID, consumed: 33, epoch: 4, membershipEpoch: epoch))
            }
            before = try await harness.withClient { client in
                let reply = try await client.getShardAssignment(assignmentRequest("d", "a", epoch: 4))
                return Dictionary(uniqueKeysWithValues: reply.shards.map { ($0.shardID, $0.consumed) })
            }
        }
        let restarted = try Harness(directory: directory)
        let expected = before
        try await restarted.withClient { client in
            let reply = try await client.getShardAssignment(assignmentRequest("d", "a", epoch: 4))
            #expect(Dictionary(uniqueKeysWithValues: reply.shards.map { ($0.shardID, $0.consumed) }) == expected)
            #expect(reply.doneShards == 1 && expected.count == 9)
        }
    }
}

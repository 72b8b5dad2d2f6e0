import Checkpoint
import DataShard
import RuntimeCore
import Testing

@Suite("Data position: from the ledgers into a checkpoint, and back")
struct DataPositionTests {
    let now = Moment(monotonic: .seconds(1), unixMillis: 1_800_000_000_000)
    let task = TaskID.default

    /// A catalog with one dataset of `shards` shards of 10 samples, epoch 0 assigned to `workers`.
    func catalog(shards: Int64, workers: [WorkerID]) throws -> DatasetCatalog {
        var catalog = DatasetCatalog()
        _ = try catalog.register(
            try DatasetSpec(name: "d", totalSamples: shards * 10, shardSize: 10, shuffle: false, seed: 0), now: now)
        for worker in workers {
            _ = try catalog.assignment(
                key: LedgerKey(task: task, dataset: "d", epoch: 0), worker: worker, members: workers,
                membershipEpoch: 1, now: now)
        }
        return catalog
    }

    @Test("started shards become cursors (done or not); a restore leases them again at the current epoch")
    func roundTrip() throws {
        let (a, b) = (try WorkerID("a"), try WorkerID("b"))
        var catalog = try catalog(shards: 4, workers: [a, b])
        let key = LedgerKey(task: task, dataset: "d", epoch: 0)
        let mine = try catalog.assignment(key: key, worker: a, members: [a, b], membershipEpoch: 1, now: now).leases
        _ = try catalog.report(key: key, worker: a, membershipEpoch: 1, shard: mine[0].shard, consumed: 10)
        _ = try catalog.report(key: key, worker: a, membershipEpoch: 1, shard: mine[1].shard, consumed: 4)

        let position = DataPosition(startedShards: catalog.startedShards(of: task))
        let cursors = try #require(position.epochs[DataPosition.EpochKey(dataset: "d", epoch: 0)])
        #expect(cursors[mine[0].shard] == DataPosition.Cursor(consumed: 10, done: true))
        #expect(cursors[mine[1].shard] == DataPosition.Cursor(consumed: 4, done: false))
        #expect(cursors.count == 2, "shards nobody started are not recorded")
        #expect(DataPosition(startedShards: catalog.startedShards(of: task, ownedBy: b)).epochs.isEmpty)

        let records = position.ledgerRecords(task: task, membershipEpoch: 7)
        let restored = try #require(records[key]).sorted { $0.shard < $1.shard }
        #expect(restored.map(\.leaseEpoch) == [7, 7])
        #expect(restored.allSatisfy { $0.owner == nil })
        #expect(
            Set(restored.map { [$0.shard, $0.consumed] }) == [[mine[0].shard, 10], [mine[1].shard, 4]])
        #expect(restored.first { $0.shard == mine[0].shard }?.state == .done)
        #expect(restored.first { $0.shard == mine[1].shard }?.state == .leased)

        // Rewinding a catalog to it resumes the shards where they stood, and says the epoch's progress changed.
        let directives = catalog.rewind(task: task, to: records, members: [a, b], membershipEpoch: 7, now: now)
        #expect(directives.contains(.progressChanged(key)))
        #expect(DataPosition(startedShards: catalog.startedShards(of: task)) == position)
    }
}

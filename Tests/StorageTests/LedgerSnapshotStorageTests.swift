import DataShard
import Foundation
import GRDB
import RuntimeCore
import Storage
import Testing

/// Ledger snapshots in the database: a restart reads the newest one and the changes after it; a write that did not
/// happen leaves the rows before it valid; a damaged row is refused with a clear error; rows written before snapshots
/// existed still load.
@Suite("Ledger snapshot storage")
struct LedgerSnapshotStorageTests {
    let directory = TemporaryDirectory()
    let now = Moment(monotonic: .seconds(1), unixMillis: 1_800_000_000_000)
    let spec = try! DatasetSpec(name: "d", totalSamples: 12_000, shardSize: 4, shuffle: true, seed: 5)
    var key: LedgerKey { LedgerKey(task: .default, dataset: "d", epoch: 0) }

    /// What a reader sees of a catalog's ledger (``DatasetCatalog/readerView(_:members:epoch:now:)``).
    func view(_ catalog: DatasetCatalog, members: [WorkerID], epoch: UInt64) throws -> String {
        try catalog.readerView(key, members: members, epoch: epoch, now: now)
    }

    /// A random run through a catalog; returns its changes in order, with the catalog, members and membership epoch
    /// after each.
    func run(rounds: Int, seed: UInt64) throws -> [(
        change: DataChange, catalog: DatasetCatalog, members: [WorkerID], epoch: UInt64
    )] {
        var catalog = DatasetCatalog()
        var random = SplitMix64(seed: seed)
        var members = try (0..<4).map { try WorkerID("w\($0)") }
        var epoch: UInt64 = 1
        var next = 4
        var log: [(DataChange, DatasetCatalog, [WorkerID], UInt64)] = []
        func keep(_ changes: [DataChange]) {
            for change in changes { log.append((change, catalog, members, epoch)) }
        }
        keep(try catalog.register(spec, now: now).directives.changes)
        for _ in 0..<rounds {
            let worker = members[Int(random.next() % UInt64(members.count))]
            switch random.next() % 40 {
            case 0 where members.count > 1:
                members.removeAll { $0 == worker }
                epoch += 1
                keep(catalog.onMembershipChange(task: .default, members: members, membershipEpoch: epoch).changes)
            case 1:
                members.append(try WorkerID("w\(next)"))
                next += 1
                epoch += 1
                keep(catalog.onMembershipChange(task: .default, members: members, membershipEpoch: epoch).changes)
            default:
                let result = try catalog.assignment(
                    key: key, worker: worker, members: members, membershipEpoch: epoch, now: now)
                keep(result.directives.changes)
                if let lease = result.leases.first {
                    let consumed = min(Int64(lease.samples.count), lease.consumed + Int64(random.next() % 3))
                    keep(
                        try catalog.report(
                            key: key, worker: worker, membershipEpoch: epoch, shard: lease.shard, consumed: consumed
                        ).directives.changes)
                }
            }
        }
        return log
    }

    func write(_ changes: [DataChange], to path: String) async throws {
        let store = try SQLiteStateStore(path: path)
        for start in stride(from: 0, to: changes.count, by: 5) {
            try await store.commit(changes[start..<min(start + 5, changes.count)].map(StateChange.data))
        }
    }

    func restore(_ path: String, members: [WorkerID], epoch: UInt64) throws -> (DatasetCatalog, [DataChange]) {
        let data = try SQLiteStateStore(path: path).loadData()
        let (catalog, directives) = DatasetCatalog.restored(
            datasets: data.datasets, ledgers: data.ledgers, membership: { _ in (members, epoch) })
        return (catalog, directives.changes)
    }

    func snapshotRows(_ path: String) async throws -> Int {
        try await DatabaseQueue(path: path).read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM ledger_delta WHERE kind = 'snapshot'") ?? 0
        }
    }

    @Test("a snapshot is written at creation and again as changes pile up; a restart reads it and what follows")
    func snapshotAndLaterChanges() async throws {
        let log = try run(rounds: 2_500, seed: 1)
        let snapshots = log.indices.filter { if case .ledgerSnapshot = log[$0].change { true } else { false } }
        #expect(snapshots.count >= 3, "one at creation, more later: \(snapshots.count)")
        let path = directory.file("state.sqlite")
        try await write(log.map(\.change), to: path)
        #expect(try await snapshotRows(path) == 1, "a snapshot replaces every row before it")
        let last = try #require(log.last)
        let data = try SQLiteStateStore(path: path).loadData()
        let ledger = try #require(data.ledgers.first)
        #expect(ledger.snapshot != nil && !ledger.deltas.isEmpty, "the newest snapshot and the changes after it")
        let (restored, directives) = try restore(path, members: last.members, epoch: last.epoch)
        #expect(directives.isEmpty, "nothing moves when membership did not change")
        #expect(
            try view(restored, members: last.members, epoch: last.epoch)
                == view(last.catalog, members: last.members, epoch: last.epoch))
    }

    @Test("a crash before a snapshot's write leaves the rows before it valid; rows older than a snapshot are ignored")
    func crashBetweenWrites() async throws {
        let log = try run(rounds: 2_500, seed: 2)
        let snapshots = log.indices.filter { if case .ledgerSnapshot = log[$0].change { true } else { false } }
        let cut = try #require(snapshots.dropFirst().first, "a snapshot after the one at creation")
        // The coordinator died before the snapshot's transaction: the database holds everything before it.
        let before = directory.file("before.sqlite")
        try await write(log[..<cut].map(\.change), to: before)
        let state = log[cut - 1]
        let (restored, _) = try restore(before, members: state.members, epoch: state.epoch)
        #expect(
            try view(restored, members: state.members, epoch: state.epoch)
                == view(state.catalog, members: state.members, epoch: state.epoch))

        // A row older than the newest snapshot (its deletion did not happen) changes nothing.
        let after = directory.file("after.sqlite")
        try await write(log[...cut].map(\.change), to: after)
        let bogus = LedgerDeltaCoding.encode(
            ShardMove(shards: Array(0..<100), owner: try WorkerID("intruder"), membershipEpoch: 99))
        try await DatabaseQueue(path: after).write { db in
            try db.execute(
                sql:
                    "INSERT INTO ledger_delta (seq, task_id, dataset, epoch, kind, payload) VALUES (1, ?, 'd', 0, 'moved', ?)",
                arguments: [TaskID.default.rawValue, Data(bogus)])
        }
        let (again, _) = try restore(after, members: state.members, epoch: state.epoch)
        #expect(
            try view(again, members: state.members, epoch: state.epoch)
                == view(log[cut].catalog, members: state.members, epoch: state.epoch))
    }

    @Test("a damaged or short snapshot row is refused with an error that names it; nothing is half-loaded")
    func damagedRows() async throws {
        let log = try run(rounds: 300, seed: 3)
        let path = directory.file("state.sqlite")
        try await write(log.map(\.change), to: path)
        let queue = try DatabaseQueue(path: path)
        let payload = try #require(
            try await queue.read { db in
                try Data.fetchOne(db, sql: "SELECT payload FROM ledger_delta WHERE kind = 'snapshot'")
            })
        let bytes = Array(payload)
        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x10
        for (damaged, expected) in [
            (Array(bytes.prefix(bytes.count / 2)), "checksum"), (Array(bytes.prefix(5)), "cut short"),
            (flipped, "checksum"),
        ] {
            try await queue.write { db in
                try db.execute(
                    sql: "UPDATE ledger_delta SET payload = ? WHERE kind = 'snapshot'", arguments: [Data(damaged)])
            }
            let error = try #require(throws: StorageError.self) { try SQLiteStateStore(path: path).loadData() }
            #expect(error.message.contains("snapshot") && error.message.contains(expected), "\(error.message)")
            #expect(error.message.contains("backup"), "says what to do: \(error.message)")
        }
        // A row with a good checksum but a state no ledger can be in (a shard owned twice).
        var snapshot = try LedgerSnapshotCoding.decode(bytes, spec: spec)
        let owner = try #require(snapshot.slots.firstIndex { !$0.positions.isEmpty })
        let other = (owner + 1) % snapshot.slots.count
        snapshot.slots[other].positions = (snapshot.slots[other].positions + [snapshot.slots[owner].positions[0]])
            .sorted()
        let inconsistent = LedgerSnapshotCoding.encode(snapshot)
        try await queue.write { db in
            try db.execute(
                sql: "UPDATE ledger_delta SET payload = ? WHERE kind = 'snapshot'", arguments: [Data(inconsistent)])
        }
        let error = try #require(throws: StorageError.self) { try SQLiteStateStore(path: path).loadData() }
        #expect(error.message.contains("owned twice"), "\(error.message)")
    }

    @Test("snapshots encode to about a byte or two a shard and decode to what was encoded")
    func coding() throws {
        let big = try DatasetSpec(name: "d", totalSamples: 1 << 16, shardSize: 1, shuffle: true, seed: 1)
        for count in [4, 100] {
            let members = try (0..<count).map { try WorkerID("worker-\($0)") }
            var ledger = ShardLedger(spec: big, epoch: 0, members: members, membershipEpoch: 1)
            for member in members.prefix(3) {
                for lease in ledger.assignment(for: member, membershipEpoch: 1).leases.prefix(3) {
                    _ = try ledger.report(worker: member, membershipEpoch: 1, shard: lease.shard, consumed: 1)
                }
            }
            let snapshot = ledger.snapshot()
            let bytes = LedgerSnapshotCoding.encode(snapshot)
            #expect(try LedgerSnapshotCoding.decode(bytes, spec: big) == snapshot)
            let perShard = Double(bytes.count) / Double(big.shardCount)
            #expect(perShard < (count < 64 ? 1.2 : 2.2), "\(count) members: \(perShard) bytes a shard")
        }
    }

    @Test("rows written before snapshots existed still load, and the restart writes a snapshot of them")
    func legacyRows() async throws {
        // What the previous version (dd94ef9) wrote: the same changes without snapshots, and a row of the older
        // per-shard table.
        let log = try run(rounds: 1_500, seed: 4)
        let legacy = log.map(\.change).filter { if case .ledgerSnapshot = $0 { false } else { true } }
        let path = directory.file("state.sqlite")
        try await write(legacy, to: path)
        #expect(try await snapshotRows(path) == 0)
        let last = try #require(log.last)
        let (restored, directives) = try restore(path, members: last.members, epoch: last.epoch)
        #expect(
            try view(restored, members: last.members, epoch: last.epoch)
                == view(last.catalog, members: last.members, epoch: last.epoch))
        #expect(directives.count == 1, "only a snapshot: \(directives)")
        try await write(directives, to: path)
        #expect(try await snapshotRows(path) == 1)
        let (again, more) = try restore(path, members: last.members, epoch: last.epoch)
        #expect(more.isEmpty)
        #expect(
            try view(again, members: last.members, epoch: last.epoch)
                == view(last.catalog, members: last.members, epoch: last.epoch))
    }
}

import DataShard
import Foundation
import GRDB
import RuntimeCore
import Storage
import Testing

/// A ledger's changes go to the database as compact rows and are folded as they pile up; whatever the database holds,
/// the catalog restored from it is the one that wrote it.
@Suite("Ledger persistence")
struct LedgerPersistenceTests {
    let directory = TemporaryDirectory()
    let now = Moment(monotonic: .seconds(1), unixMillis: 1_800_000_000_000)
    let spec = try! DatasetSpec(name: "d", totalSamples: 20_000, shardSize: 5, shuffle: true, seed: 11)
    var key: LedgerKey { LedgerKey(task: .default, dataset: "d", epoch: 0) }

    /// What a reader sees of a catalog's ledger (``DatasetCatalog/readerView(_:members:epoch:now:)``).
    func view(_ catalog: DatasetCatalog, members: [WorkerID], epoch: UInt64) throws -> String {
        try catalog.readerView(key, members: members, epoch: epoch, now: now)
    }

    @Test("moves, reports and folds round-trip: the restored catalog equals the live one")
    func roundTrip() async throws {
        let path = directory.file("state.sqlite")
        var catalog = DatasetCatalog()
        var random = SplitMix64(seed: 3)
        var members = try (0..<4).map { try WorkerID("w\($0)") }
        var epoch: UInt64 = 1
        var next = 4
        let store = try SQLiteStateStore(path: path)
        try await store.commit(try catalog.register(spec, now: now).directives.changes.map(StateChange.data))
        var batch: [StateChange] = []
        for round in 0..<3_000 {
            let worker = members[Int(random.next() % UInt64(members.count))]
            var changes: [DataChange] = []
            switch random.next() % 50 {
            case 0 where members.count > 1:
                members.removeAll { $0 == worker }
                epoch += 1
                changes += catalog.onMembershipChange(task: .default, members: members, membershipEpoch: epoch).changes
            case 1:
                members.append(try WorkerID("w\(next)"))
                next += 1
                epoch += 1
                changes += catalog.onMembershipChange(task: .default, members: members, membershipEpoch: epoch).changes
            default:
                let result = try catalog.assignment(
                    key: key, worker: worker, members: members, membershipEpoch: epoch, now: now)
                changes += result.directives.changes
                if let lease = result.leases.first {
                    let consumed = min(Int64(lease.samples.count), lease.consumed + Int64(random.next() % 4))
                    changes += try catalog.report(
                        key: key, worker: worker, membershipEpoch: epoch, shard: lease.shard, consumed: consumed
                    ).directives.changes
                }
            }
            batch += changes.map(StateChange.data)
            if round % 7 == 0 {
                try await store.commit(batch)
                batch = []
            }
        }
        try await store.commit(batch)

        let rows = try await DatabaseQueue(path: path).read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM ledger_delta") ?? 0
        }
        #expect(rows <= 257 + 7 * 4, "rows are folded as they pile up: \(rows)")
        let data = try SQLiteStateStore(path: path).loadData()
        let (restored, directives) = DatasetCatalog.restored(
            datasets: data.datasets, ledgers: data.ledgers, membership: { _ in (members, epoch) })
        #expect(directives.isEmpty, "nothing moves when membership did not change")
        #expect(try view(restored, members: members, epoch: epoch) == view(catalog, members: members, epoch: epoch))
        let summary = try #require(catalog.summaries(of: "d").first)
        #expect(summary.done > 100 && summary.inProgress > 0, "the run got somewhere: \(summary)")
    }

    @Test("folded records restore exactly the ledger their changes restore, lease epochs and cursors included")
    func foldIsExact() throws {
        let small = try DatasetSpec(name: "d", totalSamples: 600, shardSize: 3, shuffle: true, seed: 2)
        var members = try (0..<3).map { try WorkerID("w\($0)") }
        var ledger = ShardLedger(spec: small, epoch: 0, members: members, membershipEpoch: 1)
        var deltas: [LedgerDelta] = []
        var random = SplitMix64(seed: 8)
        var epoch: UInt64 = 1
        func keep(_ directives: [ShardLedger.Directive]) {
            for directive in directives {
                switch directive {
                case .persist(let records): deltas.append(.records(records))
                case .moved(let move): deltas.append(.moved(move))
                case .membersChanged: break
                }
            }
        }
        for round in 0..<600 {
            let worker = members[Int(random.next() % UInt64(members.count))]
            if round % 40 == 39 {
                epoch += 1
                if members.count > 2 {
                    members.removeAll { $0 == worker }
                } else {
                    members.append(try WorkerID("j\(round)"))
                }
                keep(ledger.syncMembers(members, membershipEpoch: epoch))
                continue
            }
            let (leases, directives) = ledger.assignment(for: worker, membershipEpoch: epoch)
            keep(directives)
            guard let lease = leases.first else { continue }
            let consumed = min(Int64(lease.samples.count), lease.consumed + Int64(random.next() % 3))
            keep(
                try ledger.report(worker: worker, membershipEpoch: epoch, shard: lease.shard, consumed: consumed)
                    .directives)
        }
        func restore(_ deltas: [LedgerDelta]) -> [ShardRecord] {
            let (restored, _) = ShardLedger.restored(
                spec: small, epoch: 0, initialMembers: try! (0..<3).map { try WorkerID("w\($0)") },
                initialMembershipEpoch: 1, deltas: deltas, lastMembers: members, lastMembershipEpoch: epoch,
                members: members, membershipEpoch: epoch)
            return (0..<small.shardCount).map(restored.record(of:))
        }
        let live = (0..<small.shardCount).map(ledger.record(of:))
        #expect(restore(deltas) == live)
        #expect(restore(LedgerDeltaCoding.fold(deltas)) == live)
        #expect(live.contains { $0.state == .leased && $0.leaseEpoch > 1 }, "moved started shards exist")
    }

    @Test("records and moves encode to a few bytes a shard and decode to what was encoded")
    func coding() throws {
        let a = try WorkerID("a")
        let b = try WorkerID("b")
        let records = [
            ShardRecord(shard: 7, owner: a, leaseEpoch: 0, consumed: 5, state: .done),
            ShardRecord(shard: 3, owner: b, leaseEpoch: 9, consumed: 2, state: .leased),
            ShardRecord(shard: 3_999, owner: nil, leaseEpoch: 0, consumed: 0, state: .pending),
        ]
        let bytes = LedgerDeltaCoding.encode(records)
        #expect(try LedgerDeltaCoding.decodeRecords(bytes, spec: spec) == records.sorted { $0.shard < $1.shard })
        let move = ShardMove(shards: Array(stride(from: 0, to: 4_000, by: 2)), owner: b, membershipEpoch: 12)
        let moveBytes = LedgerDeltaCoding.encode(move)
        #expect(moveBytes.count < 2_100, "a byte per shard moved: \(moveBytes.count)")
        #expect(try LedgerDeltaCoding.decodeMove(moveBytes, spec: spec) == move)
        let done = (0..<4_000).map { ShardRecord(shard: $0, owner: a, leaseEpoch: 0, consumed: 5, state: .done) }
        #expect(LedgerDeltaCoding.encode(done).count < 2 * 4_000 + 16, "two bytes per done shard")
        for cut in [1, bytes.count / 2, bytes.count - 1] {
            #expect(throws: StorageError.self) {
                try LedgerDeltaCoding.decodeRecords(Array(bytes.prefix(cut)), spec: spec)
            }
        }
    }
}

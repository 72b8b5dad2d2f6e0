import ArgumentParser
import Coordinator
import DataShard
import Foundation
import Logging
import RuntimeCore
import Storage

/// `dtr bench ledger`: what one big dataset costs the coordinator: creating an epoch's ledger, a join, a leave and a
/// steal mid-epoch, a report and an assignment; memory, snapshot and database bytes per shard; and a restart's load of
/// the ledger from SQLite (reading its rows, then rebuilding it). Each time is also given as a multiple of one pass over the epoch's order (computing every
/// shard's position), measured in the same run: the floor of anything that looks at every shard.
struct LedgerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Shard ledger at scale: join/leave/steal time, memory and database per shard, restart load.")

    @Option(help: "Shard counts as powers of two, comma-separated.") var log2Shards = "20,22,24"
    @Option(help: "Workers holding the epoch.") var workers = 1000

    func run() async throws {
        let sizes = log2Shards.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !sizes.isEmpty, sizes.allSatisfy({ (4...24).contains($0) }), workers >= 2 else {
            throw ValidationError("--log2-shards takes exponents between 4 and 24; --workers must be >= 2")
        }
        var lines = [
            "`dtr bench ledger --log2-shards \(log2Shards) --workers \(workers)` on \(ProcessStats.machine), load "
                + "\(ProcessStats.loadAverage.map { String(format: "%.1f", $0) }.joined(separator: " "))",
            "",
            "| shards | one pass (floor) | create | join | leave | steal | report | assignment (shards) | memory/shard "
                + "(RSS, structures) | join row | snapshot/shard | DB/shard at epoch end | restart: read rows | "
                + "restart: rebuild | restart to serving | restart to ledger ready |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for exponent in sizes {
            lines.append(try await row(shards: 1 << exponent))
            print(lines.last!)
        }
        print(lines.joined(separator: "\n"))
    }

    private func row(shards: Int) async throws -> String {
        let spec = try DatasetSpec(
            name: "bench", totalSamples: Int64(shards), shardSize: 1, shuffle: true, seed: 2026)
        let members = try (0..<workers).map { try WorkerID("worker-\($0)") }
        let joiner = try WorkerID("worker-\(workers)")

        let order = EpochOrder(spec: spec, epoch: 0)
        let pass = measure(repetitions: 1) { (0..<Int64(shards)).reduce(0) { $0 &+ order.position(of: $1) } }.median

        let before = ProcessStats.of(getpid())?.residentBytes ?? 0
        let start = ContinuousClock.now
        var ledger = ShardLedger(spec: spec, epoch: 0, members: members, membershipEpoch: 1)
        let create = ContinuousClock.now - start
        let resident = (ProcessStats.of(getpid())?.residentBytes ?? 0) - before

        // Mid-epoch: every member claimed its first shard and finished a few.
        for member in members {
            for lease in ledger.assignment(for: member, membershipEpoch: 1).leases.prefix(4) {
                _ = try ledger.report(worker: member, membershipEpoch: 1, shard: lease.shard, consumed: 1)
            }
            if let lease = ledger.assignment(for: member, membershipEpoch: 1).leases.first {
                _ = try ledger.report(worker: member, membershipEpoch: 1, shard: lease.shard, consumed: 0)
            }
        }
        var directives: [ShardLedger.Directive] = []
        let join = time { directives = ledger.syncMembers(members + [joiner], membershipEpoch: 2) }
        let joinBytes = directives.reduce(0) { total, directive in
            if case .moved(let move) = directive { total + LedgerDeltaCoding.encode(move).count } else { total }
        }
        let leave = time { _ = ledger.syncMembers(members.dropFirst() + [joiner], membershipEpoch: 3) }
        // A member finishes everything it holds, then asks again: it steals.
        let thief = members[1]
        for lease in ledger.assignment(for: thief, membershipEpoch: 3).leases {
            _ = try ledger.report(worker: thief, membershipEpoch: 3, shard: lease.shard, consumed: 1)
        }
        var stolen = 0
        let steal = time { stolen = ledger.assignment(for: thief, membershipEpoch: 3).leases.count }
        var leases: [ShardLease] = []
        let assignment = time { leases = ledger.assignment(for: members[2], membershipEpoch: 3).leases }
        let reports = min(leases.count, 1000)
        let report = try time {
            for lease in leases.prefix(reports) {
                _ = try ledger.report(worker: members[2], membershipEpoch: 3, shard: lease.shard, consumed: 1)
            }
        }
        _ = stolen

        // The database as the coordinator writes it: the ledger and its snapshot at creation, then every shard done
        // (one row of records), then the snapshot that many changes call for; in a real SQLite file.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dtr-ledger-bench-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("state.sqlite").path
        let key = LedgerKey(task: .default, dataset: "bench", epoch: 0)
        let midEpoch = ledger.snapshot()
        let snapshotBytes = LedgerSnapshotCoding.encode(midEpoch).count
        let owners = ledger.owners()
        let done = (0..<shards).map {
            ShardRecord(shard: Int64($0), owner: owners[$0], leaseEpoch: 0, consumed: 1, state: .done)
        }
        let current = members.dropFirst() + [joiner]
        let finished = ShardLedger.restored(
            spec: spec, epoch: 0, initialMembers: members, initialMembershipEpoch: 1, snapshot: midEpoch,
            deltas: [.records(done)], lastMembers: Array(current), lastMembershipEpoch: 3, members: Array(current),
            membershipEpoch: 3
        ).ledger
        guard finished.isComplete else { throw ValidationError("the finished ledger is not complete") }
        do {
            let store = try SQLiteStateStore(path: path)
            try await store.commit([
                .data(.datasetRegistered(DatasetRecord(spec: spec, registeredAtMillis: 0))),
                .data(
                    .ledgerCreated(
                        LedgerHeader(key: key, initialMembers: members, initialMembershipEpoch: 1, createdAtMillis: 0))),
                .data(.ledgerSnapshot(key, midEpoch)),
            ])
            try await store.commit([.data(.ledgerMembers(key, Array(current), membershipEpoch: 3))])
            try await store.commit([.data(.shardsChanged(key, done))])
            try await store.commit([.data(.ledgerSnapshot(key, finished.snapshot()))])
        }
        let databaseBytes = ["", "-wal"].reduce(0) { total, suffix in
            total + ((try? FileManager.default.attributesOfItem(atPath: path + suffix)[.size] as? Int) ?? 0)
        }
        // A restart: read the rows (the snapshot decoded and checked), then rebuild the catalog from them.
        var data = PersistedData()
        let load = try time { data = try SQLiteStateStore(path: path).loadData() }
        var restored = 0
        let rebuild = time {
            let (catalog, _) = DatasetCatalog.restored(
                datasets: data.datasets, ledgers: data.ledgers, membership: { _ in (Array(current), 3) })
            restored = catalog.counts(of: key)?.done ?? 0
        }
        guard restored == shards else { throw ValidationError("the restored ledger has \(restored) of \(shards) done") }
        data = PersistedData()
        let (serving, ready) = try await restart(path: path)

        let ms = { (d: Duration) in "\(d.report) (\(String(format: "%.2f", d.ratio(to: pass)))×)" }
        return "| 2^\(Int(log2(Double(shards)))) | \(pass.report) | \(ms(create)) | \(ms(join)) | \(ms(leave)) | "
            + "\(ms(steal)) | \(String(format: "%.1f µs", report.ratio(to: .microseconds(1)) / Double(max(1, reports)))) | "
            + "\(assignment.report) (\(leases.count)) | "
            + String(
                format: "%.1f B, %.1f B", Double(resident) / Double(shards),
                Double(ledger.approximateBytes) / Double(shards))
            + String(format: " | %.1f KiB | ", Double(joinBytes) / 1024)
            + String(format: "%.2f B | ", Double(snapshotBytes) / Double(shards))
            + String(format: "%.2f B", Double(databaseBytes) / Double(shards))
            + " | \(ms(load)) | \(ms(rebuild)) | \(ms(serving)) | \(ms(ready)) |"
    }

    /// Restarts an engine on the database as `dtr serve` does (datasets and ledgers load off its actor): how long until
    /// it answers (its status), and until its datasets and ledgers are loaded (what a data call waits for).
    private func restart(path: String) async throws -> (serving: Duration, ready: Duration) {
        let start = ContinuousClock.now
        let store = try SQLiteStateStore(path: path)
        let queue = WriteBehindQueue(commit: store.commit)
        let clock = SystemMoments()
        let engine = CoordinatorEngine(
            membershipConfig: .defaults, restoring: try store.loadMembership(), loadingData: { try store.loadData() },
            queue: queue, now: { clock.now() }, logger: Logger(label: "bench"))
        _ = await engine.status()
        let serving = ContinuousClock.now - start
        while true {
            do {
                _ = try await engine.loadedDatasets()
                break
            } catch let error as CoreError where error.code == .unavailable && error.message.contains("retry") {
                continue  // still loading after the engine's bound: ask again, as a client would
            }
        }
        return (serving, ContinuousClock.now - start)
    }

    private func time(_ body: () throws -> Void) rethrows -> Duration {
        let start = ContinuousClock.now
        try body()
        return ContinuousClock.now - start
    }
}

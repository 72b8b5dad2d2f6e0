import ArgumentParser
import DataShard
import Foundation
import RuntimeCore

/// `dtr bench placement`: initial placement and join/leave rebalancing of a shard ledger, side by side with
/// `hash mod n` and an unbounded consistent-hashing ring computed in the same run.
struct PlacementBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "placement",
        abstract:
            "Shard placement: time, moved fraction on join/leave, and balance, against hash mod n and a plain ring.")

    @Option(help: "Number of shards.") var shards = 1_000_000
    @Option(help: "Number of workers.") var workers = 1000
    @Option(help: "Repetitions per measurement (the median is reported).") var repetitions = 3

    func run() throws {
        guard shards > 0, workers > 1 else { throw ValidationError("--shards must be >= 1 and --workers >= 2") }
        let spec = try DatasetSpec(
            name: "bench", totalSamples: Int64(shards), shardSize: 1, shuffle: true, seed: 2026)
        let salt = Placement.salt(for: spec)
        let members = try (0..<workers).map { try WorkerID("worker-\($0)") }
        let joiner = try WorkerID("worker-\(workers)")
        let epsilon = PlacementConfig.defaults.epsilon
        let fair = 1.0 / Double(workers + 1)

        var rows: [Row] = []

        // hash mod n: the cheapest placement there is, and the worst at keeping shards put.
        let modN = measure(repetitions: repetitions) { hashModN(shards, workers, salt) }
        let modNJoin = measure(repetitions: repetitions) { hashModN(shards, workers + 1, salt) }
        rows.append(
            Row(
                name: "hash mod n", initial: modN.median, join: modNJoin.median, leave: nil,
                joinMoved: movedFraction(modN.result, members, modNJoin.result, members + [joiner]),
                leaveMoved: nil, balance: balance(modN.result, workers)))

        // Unbounded ring: consistent, but only as balanced as its virtual nodes make it.
        let ringBuild = { (m: [WorkerID]) in
            ConsistentRing(members: m, salt: salt, virtualNodes: PlacementConfig.defaults.virtualNodes)
        }
        let plain = measure(repetitions: repetitions) { firstChoices(shards, ringBuild(members), salt) }
        let plainJoin = measure(repetitions: repetitions) { firstChoices(shards, ringBuild(members + [joiner]), salt) }
        let survivors = Array(members.dropFirst())
        let plainLeave = measure(repetitions: repetitions) { firstChoices(shards, ringBuild(survivors), salt) }
        rows.append(
            Row(
                name: "ring, unbounded", initial: plain.median, join: plainJoin.median, leave: plainLeave.median,
                joinMoved: movedFraction(plain.result, members, plainJoin.result, members + [joiner]),
                leaveMoved: movedFraction(plain.result, members, plainLeave.result, survivors),
                balance: balance(plain.result, workers)))

        // Bounded-load ring recomputed from scratch (what a new epoch does).
        let bounded = measure(repetitions: repetitions) {
            Placement.place(shardCount: shards, ring: ringBuild(members), salt: salt, epsilon: epsilon)
        }
        let boundedJoin = measure(repetitions: repetitions) {
            Placement.place(shardCount: shards, ring: ringBuild(members + [joiner]), salt: salt, epsilon: epsilon)
        }
        let boundedLeave = measure(repetitions: repetitions) {
            Placement.place(shardCount: shards, ring: ringBuild(survivors), salt: salt, epsilon: epsilon)
        }
        rows.append(
            Row(
                name: "bounded ring, recomputed", initial: bounded.median, join: boundedJoin.median,
                leave: boundedLeave.median,
                joinMoved: movedFraction(bounded.result, members, boundedJoin.result, members + [joiner]),
                leaveMoved: movedFraction(bounded.result, members, boundedLeave.result, survivors),
                balance: balance(bounded.result, workers)))

        // The ledger: bounded placement, then incremental moves (what happens mid-epoch).
        let created = measure(repetitions: repetitions) {
            ShardLedger(spec: spec, epoch: 0, members: members, membershipEpoch: 1)
        }
        let before = owners(created.result)
        let fresh = { ShardLedger(spec: spec, epoch: 0, members: members, membershipEpoch: 1) }
        let joined = measure(repetitions: repetitions, setup: fresh) {
            _ = $0.syncMembers(members + [joiner], membershipEpoch: 2)
        }
        let left = measure(repetitions: repetitions, setup: fresh) {
            _ = $0.syncMembers(survivors, membershipEpoch: 2)
        }
        rows.append(
            Row(
                name: "**ledger (ours)**: bounded ring + incremental moves", initial: created.median,
                join: joined.median, leave: left.median,
                joinMoved: changed(before, owners(joined.result)), leaveMoved: changed(before, owners(left.result)),
                balance: ledgerBalance(created.result)))

        // A tenth as many workers again joining in one membership change (a join storm taken by one sync).
        let newcomers = try (0..<max(1, workers / 10)).map { try WorkerID("joiner-\($0)") }
        let joinedAtOnce = measure(repetitions: repetitions, setup: fresh) {
            _ = $0.syncMembers(members + newcomers, membershipEpoch: 2)
        }
        // Every member asks for its first page once, as each does at an epoch's start (on the engine's actor).
        let pages = measure(repetitions: repetitions, setup: fresh) { ledger in
            for member in members {
                _ = ledger.assignment(for: member, membershipEpoch: 1, page: AssignmentPage(limit: 10))
            }
        }
        print(report(rows, baseline: modN.median, fair: fair, epsilon: epsilon))
        print(
            "Ledger: \(newcomers.count) workers joining at once: \(joinedAtOnce.median.report); "
                + "the fewest shards a joiner took: \(fewest(joinedAtOnce.result, newcomers)).")
        print(
            "Ledger: every member's first page of 10 shards, once each: \(pages.median.report) in all, "
                + String(format: "%.2f µs", pages.median.seconds * 1e6 / Double(workers)) + " a call.")
    }

    struct Row {
        var name: String
        var initial: Duration
        var join: Duration
        var leave: Duration?
        var joinMoved: Double
        var leaveMoved: Double?
        var balance: Double
    }

    func report(_ rows: [Row], baseline: Duration, fair: Double, epsilon: Double) -> String {
        var lines = [
            "`dtr bench placement --shards \(shards) --workers \(workers)` (median of \(repetitions); "
                + "ratios are to hash mod n's placement time in the same run)",
            "",
            "| placement | initial | join | leave | moved on join (÷ 1/(n+1)) | moved on leave (÷ 1/n) | max/mean |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in rows {
            let time = { (d: Duration) in "\(d.report) (\(String(format: "%.1f", d.ratio(to: baseline)))×)" }
            let leaveFraction = row.leaveMoved.map {
                String(format: "%.4f (%.2f×)", $0, $0 / (1.0 / Double(workers)))
            }
            lines.append(
                "| \(row.name) | \(time(row.initial)) | \(time(row.join)) | \(row.leave.map(time) ?? "–") | "
                    + String(format: "%.4f (%.2f×)", row.joinMoved, row.joinMoved / fair)
                    + " | \(leaveFraction ?? "–") | "
                    + String(format: "%.3f", row.balance) + " |")
        }
        lines += [
            "",
            "Targets: ledger initial placement ≤ 200 ms, join/leave rebalance ≤ 50 ms, moved fraction on join ≤ 1.1 × "
                + "1/(n+1), max/mean ≤ 1 + ε = \(1 + epsilon) (plus rounding).",
        ]
        return lines.joined(separator: "\n")
    }
}

// MARK: Placements and their measures

private func hashModN(_ shards: Int, _ workers: Int, _ salt: UInt64) -> [Int32] {
    (0..<shards).map { Int32(ConsistentRing.point(ofShard: Int64($0), salt: salt) % UInt64(workers)) }
}

private func firstChoices(_ shards: Int, _ ring: ConsistentRing, _ salt: UInt64) -> [Int32] {
    (0..<shards).map { Int32(ring.firstChoice(for: ConsistentRing.point(ofShard: Int64($0), salt: salt)) ?? -1) }
}

/// Fraction of shards whose owner changed (owners are indices into their member lists).
private func movedFraction(_ a: [Int32], _ membersA: [WorkerID], _ b: [Int32], _ membersB: [WorkerID]) -> Double {
    changed(a.map { membersA[Int($0)] }, b.map { membersB[Int($0)] })
}

private func changed(_ a: [WorkerID?], _ b: [WorkerID?]) -> Double {
    Double(zip(a, b).filter { $0 != $1 }.count) / Double(a.count)
}

private func balance(_ owners: [Int32], _ workers: Int) -> Double {
    var loads = [Int](repeating: 0, count: workers)
    for owner in owners { loads[Int(owner)] += 1 }
    return Double(loads.max() ?? 0) / (Double(owners.count) / Double(workers))
}

private func owners(_ ledger: ShardLedger) -> [WorkerID?] { ledger.owners() }

private func fewest(_ ledger: ShardLedger, _ workers: [WorkerID]) -> Int {
    let loads = Dictionary(uniqueKeysWithValues: ledger.remainingPerMember().map { ($0.worker, $0.remaining) })
    return workers.map { loads[$0] ?? 0 }.min() ?? 0
}

private func ledgerBalance(_ ledger: ShardLedger) -> Double {
    let loads = ledger.remainingPerMember().map(\.remaining)
    return Double(loads.max() ?? 0) / (Double(loads.reduce(0, +)) / Double(loads.count))
}

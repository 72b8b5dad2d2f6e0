import DataShard
import RuntimeCore

/// Drives a ``ShardLedger`` the way a task's workers would: joins, leaves, deaths, commits and assignment requests,
/// counting every committed sample so a test can prove each was committed exactly once.
struct LedgerSimulation {
    var ledger: ShardLedger
    var members: [WorkerID]
    var membershipEpoch: UInt64
    var nextWorker: Int
    /// Times each (shard, position in the shard's order) was committed.
    var commits: [[Int]]
    var random: SplitMix64
    /// Largest join move seen, as a fraction of 1/(n+1) of all shards.
    var worstJoinMove = 0.0

    init(spec: DatasetSpec, workers: Int, seed: UInt64) throws {
        members = try (0..<workers).map { try WorkerID("w\($0)") }
        nextWorker = workers
        membershipEpoch = UInt64(workers)
        ledger = ShardLedger(spec: spec, epoch: 1, members: members, membershipEpoch: membershipEpoch)
        commits = (0..<spec.shardCount).map { [Int](repeating: 0, count: spec.sampleRange(ofShard: $0).count) }
        random = SplitMix64(seed: seed)
    }

    mutating func pick(_ count: Int) -> Int { Int(random.next() % UInt64(count)) }

    var owners: [WorkerID?] { (0..<Int64(ledger.shardCount)).map { ledger.record(of: $0).owner } }

    mutating func join() throws {
        let before = owners
        let worker = try WorkerID("w\(nextWorker)")
        nextWorker += 1
        members.append(worker)
        membershipEpoch += 1
        _ = ledger.syncMembers(members, membershipEpoch: membershipEpoch)
        let moved = zip(before, owners).filter { $0 != nil && $0 != $1 }.count
        let fair = Double(ledger.shardCount) / Double(members.count)
        worstJoinMove = max(worstJoinMove, Double(moved) / fair)
    }

    mutating func depart() {
        guard !members.isEmpty else { return }
        members.remove(at: pick(members.count))
        membershipEpoch += 1
        _ = ledger.syncMembers(members, membershipEpoch: membershipEpoch)
    }

    /// A random member commits a random part of its first unfinished shard (or claims it).
    mutating func work() throws {
        guard !members.isEmpty else { return }
        let worker = members[pick(members.count)]
        let leases = ledger.assignment(for: worker, membershipEpoch: membershipEpoch).leases
        guard let lease = leases.first else { return }
        let length = Int64(lease.samples.count)
        let target = min(length, lease.consumed + Int64(pick(Int(length) + 1)))
        try commit(worker, lease.shard, target)
    }

    mutating func commit(_ worker: WorkerID, _ shard: Int64, _ target: Int64) throws {
        let before = ledger.record(of: shard).consumed
        let (record, _) = try ledger.report(
            worker: worker, membershipEpoch: membershipEpoch, shard: shard, consumed: target)
        for position in before..<record.consumed { commits[Int(shard)][Int(position)] += 1 }
    }

    /// Every remaining member works until the epoch is complete (a member joins if nobody is left).
    mutating func drain() throws {
        if members.isEmpty { try join() }
        var rounds = 0
        while !ledger.isComplete {
            rounds += 1
            precondition(rounds < 100_000, "the epoch never completes")
            for worker in members {
                for lease in ledger.assignment(for: worker, membershipEpoch: membershipEpoch).leases {
                    try commit(worker, lease.shard, Int64(lease.samples.count))
                }
            }
        }
    }

    /// The ledger's invariants: unfinished shards belong to current members (when there are any), counters match.
    func checkInvariants() -> [String] {
        var problems: [String] = []
        let memberSet = Set(members)
        var remaining: [WorkerID: Int] = [:]
        for shard in 0..<Int64(ledger.shardCount) {
            let record = ledger.record(of: shard)
            guard record.state != .done else { continue }
            if let owner = record.owner {
                if !memberSet.contains(owner) { problems.append("shard \(shard) owned by departed \(owner)") }
                remaining[owner, default: 0] += 1
            } else if !members.isEmpty {
                problems.append("shard \(shard) unowned while there are members")
            }
        }
        for load in ledger.remainingPerMember() where remaining[load.worker, default: 0] != load.remaining {
            problems.append(
                "\(load.worker) counts \(load.remaining) remaining shards, owns \(remaining[load.worker, default: 0])")
        }
        return problems
    }
}

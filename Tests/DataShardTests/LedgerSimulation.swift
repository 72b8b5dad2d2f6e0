import DataShard
import RuntimeCore

/// Drives a ``ShardLedger`` the way a task's workers running the Python SDK would: each worker keeps the assignment
/// it last fetched (and the membership epoch it was fetched at) and works through it like `Worker.epoch_batches`,
/// claiming a shard, resuming from the cursor the claim returns, committing batches, and dropping a shard when a
/// report is refused. Workers die, leave, join and rejoin under their old ids with stale assignments in hand.
/// Every sample a worker processed and got acknowledged is counted, so a test can prove each was committed exactly
/// once.
struct LedgerSimulation {
    struct Cached {
        var leases: [ShardLease]
        var epoch: UInt64
        /// Shards already claimed: their `consumed` is the worker's own position, which it commits from without
        /// asking again (as `epoch_batches` does batch after batch).
        var claimed: Set<Int64> = []
    }

    var ledger: ShardLedger
    var members: [WorkerID]
    var departed: [WorkerID] = []
    var membershipEpoch: UInt64
    var nextWorker: Int
    var cache: [WorkerID: Cached] = [:]
    /// Times each (shard, position in the shard's order) was processed and acknowledged.
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

    var owners: [WorkerID?] { ledger.owners() }

    /// Workers join, `count` of them in one membership change: new ones, or (sometimes) departed ones again under
    /// their old ids.
    mutating func join(count: Int = 1) throws {
        let before = owners
        for _ in 0..<count {
            let worker: WorkerID
            if !departed.isEmpty, pick(2) == 0 {
                worker = departed.remove(at: pick(departed.count))
            } else {
                worker = try WorkerID("w\(nextWorker)")
                nextWorker += 1
            }
            members.append(worker)
        }
        membershipEpoch += 1
        _ = ledger.syncMembers(members, membershipEpoch: membershipEpoch)
        let moved = zip(before, owners).filter { $0 != nil && $0 != $1 }.count
        let fair = Double(ledger.shardCount) / Double(members.count)
        worstJoinMove = max(worstJoinMove, Double(moved) / (fair * Double(count)))
    }

    /// A worker dies or leaves (its cached assignment stays in hand, for when it comes back).
    mutating func depart() {
        guard !members.isEmpty else { return }
        departed.append(members.remove(at: pick(members.count)))
        membershipEpoch += 1
        _ = ledger.syncMembers(members, membershipEpoch: membershipEpoch)
    }

    /// A random member works on the first shard of its (possibly stale) assignment.
    mutating func work() throws {
        guard !members.isEmpty else { return }
        let worker = members[pick(members.count)]
        if cache[worker]?.leases.isEmpty ?? true {
            cache[worker] = Cached(
                leases: ledger.assignment(for: worker, membershipEpoch: membershipEpoch).leases,
                epoch: membershipEpoch)
        }
        guard let cached = cache[worker], let lease = cached.leases.first else { return }
        let length = Int64(lease.samples.count)
        let cursor: Int64
        if cached.claimed.contains(lease.shard) {
            cursor = lease.consumed
        } else {
            // Claim, and resume from the cursor the coordinator returns.
            guard let recorded = try report(worker, lease.shard, lease.consumed, epoch: cached.epoch) else { return }
            cursor = recorded
            cache[worker]?.claimed.insert(lease.shard)
        }
        let target = min(length, cursor + Int64(pick(Int(length) + 1)))
        guard try report(worker, lease.shard, target, epoch: cached.epoch) != nil else { return }
        for position in cursor..<target { commits[Int(lease.shard)][Int(position)] += 1 }
        if target == length {
            cache[worker]?.leases.removeFirst()
        } else {
            cache[worker]?.leases[0].consumed = target
        }
    }

    /// Reports a cursor; returns the recorded cursor, or nil (and forgets the shard) when the report is refused.
    mutating func report(_ worker: WorkerID, _ shard: Int64, _ consumed: Int64, epoch: UInt64) throws -> Int64? {
        let outcome: Result<ShardRecord, CoreError>
        do {
            outcome = .success(
                try ledger.report(worker: worker, membershipEpoch: epoch, shard: shard, consumed: consumed).record)
        } catch {
            outcome = .failure(error)
        }
        switch outcome {
        case .success(let record):
            return record.consumed
        case .failure(let error) where error.code == .failedPrecondition:
            cache[worker]?.leases.removeAll { $0.shard == shard }
            return nil
        case .failure(let error):
            throw error
        }
    }

    /// Every remaining member works until the epoch is complete (a member joins if nobody is left).
    mutating func drain() throws {
        if members.isEmpty { try join() }
        var rounds = 0
        while !ledger.isComplete {
            rounds += 1
            precondition(rounds < 1_000_000, "the epoch never completes")
            try work()
        }
    }

    /// The ledger's invariants: unfinished shards belong to current members (when there are any), counters match.
    func checkInvariants() -> [String] {
        var problems: [String] = []
        let memberSet = Set(members)
        var remaining: [WorkerID: Int] = [:]
        var done = 0
        var inProgress = 0
        var committed: Int64 = 0
        for shard in 0..<Int64(ledger.shardCount) {
            let record = ledger.record(of: shard)
            committed += record.consumed
            if record.state == .leased { inProgress += 1 }
            if record.state == .done {
                done += 1
                continue
            }
            if let owner = record.owner {
                if !memberSet.contains(owner) { problems.append("shard \(shard) owned by departed \(owner)") }
                remaining[owner, default: 0] += 1
            } else if !members.isEmpty {
                problems.append("shard \(shard) unowned while there are members")
            }
        }
        if done != ledger.doneCount { problems.append("\(done) shards done, doneCount says \(ledger.doneCount)") }
        if inProgress != ledger.inProgressCount {
            problems.append("\(inProgress) shards in progress, inProgressCount says \(ledger.inProgressCount)")
        }
        if committed != ledger.committedSamples {
            problems.append("\(committed) samples committed, committedSamples says \(ledger.committedSamples)")
        }
        for load in ledger.remainingPerMember() where remaining[load.worker, default: 0] != load.remaining {
            problems.append(
                "\(load.worker) counts \(load.remaining) remaining shards, owns \(remaining[load.worker, default: 0])")
        }
        // A member is given its unfinished shards; a departed worker nothing (on a copy: an idle member may steal).
        var probe = ledger
        for worker in departed {
            let given = probe.assignment(for: worker, membershipEpoch: membershipEpoch)
            if !given.leases.isEmpty || !given.directives.isEmpty {
                problems.append("departed \(worker) was given \(given.leases.count) shards")
            }
        }
        for (worker, count) in remaining {
            let given = probe.assignment(for: worker, membershipEpoch: membershipEpoch).leases.count
            if given != count { problems.append("\(worker) owns \(count) unfinished shards, was given \(given)") }
        }
        return problems
    }
}

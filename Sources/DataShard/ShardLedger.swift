public import RuntimeCore

/// Where one shard of one epoch stands.
public enum ShardState: String, Sendable, Hashable, CaseIterable {
    /// Assigned to a worker that has not started it: it may still move to a joiner or a thief.
    case pending
    /// Its owner started it (claimed it, or committed part of it): it moves only if the owner dies or leaves.
    case leased
    /// Every sample committed.
    case done
}

/// The durable form of one shard's state in one epoch's ledger.
public struct ShardRecord: Sendable, Hashable {
    /// The shard.
    public var shard: Int64
    /// Its worker, if any member is left to own it.
    public var owner: WorkerID?
    /// The membership epoch at which the owner got it: reports from before that are stale.
    public var leaseEpoch: UInt64
    /// Samples of the shard's epoch order already committed (a cursor).
    public var consumed: Int64
    /// Pending, leased or done.
    public var state: ShardState

    /// Creates a record.
    public init(shard: Int64, owner: WorkerID?, leaseEpoch: UInt64, consumed: Int64, state: ShardState) {
        self.shard = shard
        self.owner = owner
        self.leaseEpoch = leaseEpoch
        self.consumed = consumed
        self.state = state
    }
}

/// How many unfinished shards one member holds.
public struct MemberLoad: Sendable, Hashable {
    /// The member.
    public var worker: WorkerID
    /// Its shards not done.
    public var remaining: Int
}

/// One shard as a worker is told to read it.
public struct ShardLease: Sendable, Hashable {
    /// The shard.
    public var shard: Int64
    /// Its sample indices (to be visited in the order seeded by `sampleSeed`).
    public var samples: Range<Int64>
    /// How many samples of that order are already committed: resume after them.
    public var consumed: Int64
    /// Seed of the shard's sample order this epoch.
    public var sampleSeed: UInt64
}

/// The ledger of one (task, dataset, epoch): which shard is pending, leased or done, and whose it is.
///
/// A pure state machine: every sample of the dataset is committed exactly once per epoch while workers die, leave and
/// join. Shards are placed by bounded-load consistent hashing (``Placement``); afterwards only these moves happen:
/// - a worker dies or leaves: only its unfinished shards move, each to the first survivor clockwise with room, keeping
///   its committed cursor;
/// - a worker joins: it takes a fair share of the *unstarted* shards (first from anyone over capacity, then the ones
///   its ring points claim, then from the most loaded), and nothing else moves;
/// - a worker runs out: it steals the later half of the unstarted shards of the worker with the most.
/// Reports are idempotent (cursors only move forward) and fenced: only the current owner, at a membership epoch not
/// older than its lease, may commit.
public struct ShardLedger: Sendable {
    /// What the shell must persist (together, in order).
    public enum Directive: Sendable, Hashable {
        /// These shard records changed.
        case persist([ShardRecord])
        /// The ledger now follows these members (rank order), as of this membership epoch.
        case membersChanged([WorkerID], membershipEpoch: UInt64)
    }

    /// The dataset.
    public let spec: DatasetSpec
    /// The epoch.
    public let epoch: Int64
    /// Placement settings.
    public let config: PlacementConfig
    /// The members when the ledger was created (its initial placement is a function of them).
    public let initialMembers: [WorkerID]
    /// The membership epoch when the ledger was created.
    public let initialMembershipEpoch: UInt64

    private let salt: UInt64
    /// The epoch's shard order, and each shard's position in it.
    private let order: [Int64]
    private let position: [Int32]

    /// Every worker that ever owned a shard here; shard owners are indices into it.
    private var slots: [WorkerID] = []
    private var slotOf: [WorkerID: Int32] = [:]
    /// Current members in rank order, their slots, and the ring over them.
    private var members: [WorkerID] = []
    private var memberSlots: [Int32] = []
    private var ring: ConsistentRing

    private var owner: [Int32]
    private var state: [ShardState]
    private var consumed: [Int64]
    private var leaseEpoch: [UInt64]
    /// Per slot: owned shards not done, and owned shards pending.
    private var remaining: [Int] = []
    private var pending: [Int] = []
    /// Number of done shards.
    public private(set) var doneCount = 0
    /// Number of shards started (claimed or partly committed) and not done.
    public private(set) var inProgressCount = 0
    /// Samples committed: the cursors of every shard (a done shard's cursor is its length).
    public private(set) var committedSamples: Int64 = 0

    // MARK: Creation

    /// A fresh ledger: shards placed on `members` at `membershipEpoch`.
    public init(
        spec: DatasetSpec, epoch: Int64, members: [WorkerID], membershipEpoch: UInt64,
        config: PlacementConfig = .defaults
    ) {
        self.spec = spec
        self.epoch = epoch
        self.config = config
        self.initialMembers = members
        self.initialMembershipEpoch = membershipEpoch
        salt = Placement.salt(for: spec)
        order = EpochShuffle.shardOrder(of: spec, epoch: epoch)
        var position = [Int32](repeating: 0, count: order.count)
        for (index, shard) in order.enumerated() { position[Int(shard)] = Int32(index) }
        self.position = position
        let count = Int(spec.shardCount)
        ring = ConsistentRing(members: members, salt: salt, virtualNodes: config.virtualNodes)
        state = [ShardState](repeating: .pending, count: count)
        consumed = [Int64](repeating: 0, count: count)
        leaseEpoch = [UInt64](repeating: membershipEpoch, count: count)
        owner = [Int32](repeating: -1, count: count)
        adopt(members)
        let placed = Placement.place(shardCount: count, ring: ring, salt: salt, epsilon: config.epsilon)
        for shard in 0..<count where placed[shard] >= 0 {
            let slot = memberSlots[Int(placed[shard])]
            owner[shard] = slot
            remaining[Int(slot)] += 1
            pending[Int(slot)] += 1
        }
    }

    /// A ledger restored from its creation parameters, its persisted shard records and the members it last followed,
    /// then brought up to date with the task's current members. Nothing moves unless membership really changed, or a
    /// record names an owner that is not a member (its move was lost in a crash): such shards move now.
    public static func restored(
        spec: DatasetSpec, epoch: Int64, initialMembers: [WorkerID], initialMembershipEpoch: UInt64,
        config: PlacementConfig = .defaults, records: [ShardRecord], lastMembers: [WorkerID],
        lastMembershipEpoch: UInt64, members: [WorkerID], membershipEpoch: UInt64
    ) -> (ledger: ShardLedger, directives: [Directive]) {
        var ledger = ShardLedger(
            spec: spec, epoch: epoch, members: initialMembers, membershipEpoch: initialMembershipEpoch,
            config: config)
        for record in records where (0..<spec.shardCount).contains(record.shard) {
            ledger.overwrite(record)
        }
        ledger.adopt(lastMembers)
        var directives: [Directive] = []
        let orphans = ledger.placeOrphans(membershipEpoch: lastMembershipEpoch)
        if !orphans.isEmpty { directives.append(.persist(orphans.map(ledger.record(of:)))) }
        directives += ledger.syncMembers(members, membershipEpoch: membershipEpoch)
        return (ledger, directives)
    }

    // MARK: Queries

    /// Number of shards.
    public var shardCount: Int { owner.count }

    /// Whether every shard is done.
    public var isComplete: Bool { doneCount == owner.count }

    /// The record of one shard.
    public func record(of shard: Int64) -> ShardRecord {
        let index = Int(shard)
        return ShardRecord(
            shard: shard, owner: owner[index] >= 0 ? slots[Int(owner[index])] : nil, leaseEpoch: leaseEpoch[index],
            consumed: consumed[index], state: state[index])
    }

    /// The records of every started shard (partly consumed or done), or only of those `owner` holds, by shard id.
    public func startedShards(ownedBy owner: WorkerID? = nil) -> [ShardRecord] {
        let slot = owner.map { slotOf[$0] ?? -2 }
        var started: [ShardRecord] = []
        for shard in 0..<self.owner.count where consumed[shard] > 0 || state[shard] == .done {
            if let slot, self.owner[shard] != slot { continue }
            started.append(record(of: Int64(shard)))
        }
        return started
    }

    /// Shards not done, per current member (every member listed, in rank order).
    public func remainingPerMember() -> [MemberLoad] {
        zip(members, memberSlots).map { MemberLoad(worker: $0, remaining: remaining[Int($1)]) }
    }

    /// Shards not done and owned by nobody (every member departed).
    public var unowned: Int {
        var count = 0
        for shard in 0..<owner.count where owner[shard] < 0 && state[shard] != .done { count += 1 }
        return count
    }

    // MARK: Events

    /// The shards `worker` should read, in epoch order, minus those done. A member with nothing left first steals
    /// from the member with the most unstarted shards. Non-members get nothing.
    public mutating func assignment(for worker: WorkerID, membershipEpoch: UInt64) -> (
        leases: [ShardLease], directives: [Directive]
    ) {
        guard let slot = memberSlot(of: worker) else { return ([], []) }
        // Idle and nothing left to steal: answer without looking at the shards (idle workers poll).
        if remaining[Int(slot)] == 0, !memberSlots.contains(where: { pending[Int($0)] > 0 }) { return ([], []) }
        var directives: [Directive] = []
        if remaining[Int(slot)] == 0, !isComplete {
            let stolen = steal(into: slot, membershipEpoch: membershipEpoch)
            if !stolen.isEmpty { directives.append(.persist(stolen.map(record(of:)))) }
        }
        var leases: [ShardLease] = []
        leases.reserveCapacity(remaining[Int(slot)])
        for shard in order where owner[Int(shard)] == slot && state[Int(shard)] != .done {
            leases.append(
                ShardLease(
                    shard: shard, samples: spec.sampleRange(ofShard: shard), consumed: consumed[Int(shard)],
                    sampleSeed: EpochShuffle.sampleOrderSeed(seed: spec.seed, epoch: epoch, shard: shard)))
        }
        return (leases, directives)
    }

    /// A worker commits `consumed` samples of `shard` (its cursor in the shard's epoch order); `consumed == 0`
    /// claims the shard (it is no longer given away to joiners). Idempotent: a cursor behind the recorded one
    /// changes nothing.
    ///
    /// - Throws: `invalidArgument` for a shard or cursor out of range; `failedPrecondition` when the shard is not
    ///   leased to this worker or the worker's membership epoch predates the lease (the report is stale).
    public mutating func report(
        worker: WorkerID, membershipEpoch: UInt64, shard: Int64, consumed newConsumed: Int64
    ) throws(CoreError) -> (record: ShardRecord, directives: [Directive]) {
        guard (0..<spec.shardCount).contains(shard) else {
            throw .invalid("shard_id", "must be between 0 and \(spec.shardCount - 1)", got: String(shard))
        }
        let index = Int(shard)
        let length = Int64(spec.sampleRange(ofShard: shard).count)
        guard (0...length).contains(newConsumed) else {
            throw .invalid("consumed", "must be between 0 and the shard's \(length) samples", got: String(newConsumed))
        }
        let holder = owner[index] >= 0 ? slots[Int(owner[index])] : nil
        guard holder == worker else {
            let now = holder.map { "leased to \($0) (since membership epoch \(leaseEpoch[index]))" } ?? "unowned"
            throw CoreError(
                .failedPrecondition,
                "shard \(shard) of \(spec.name) epoch \(epoch) is \(now), not to \(worker): its lease moved when "
                    + "membership changed; skip it and ask GetShardAssignment again",
                reason: .shardMoved)
        }
        guard membershipEpoch >= leaseEpoch[index] else {
            throw CoreError(
                .failedPrecondition,
                "stale report: shard \(shard) of \(spec.name) epoch \(epoch) was leased to \(worker) at membership "
                    + "epoch \(leaseEpoch[index]), after this report's epoch \(membershipEpoch)",
                reason: .shardMoved)
        }
        guard newConsumed > consumed[index] || (state[index] == .pending && newConsumed == consumed[index]) else {
            return (record(of: shard), [])
        }
        let slot = Int(owner[index])
        if state[index] == .pending { pending[slot] -= 1 }
        if state[index] == .leased { inProgressCount -= 1 }
        committedSamples += newConsumed - consumed[index]
        consumed[index] = newConsumed
        if newConsumed == length {
            state[index] = .done
            remaining[slot] -= 1
            doneCount += 1
        } else {
            state[index] = .leased
            inProgressCount += 1
        }
        let changed = record(of: shard)
        return (changed, [.persist([changed])])
    }

    /// The task's membership changed: shards of departed workers move to survivors (and unowned shards to anyone),
    /// then each joiner takes its fair share of unstarted shards.
    public mutating func syncMembers(_ newMembers: [WorkerID], membershipEpoch: UInt64) -> [Directive] {
        let joiners = newMembers.filter { memberSlot(of: $0) == nil }
        guard joiners.count > 0 || newMembers != members else { return [] }
        adopt(newMembers)
        var changed = placeOrphans(membershipEpoch: membershipEpoch)
        if !isComplete {
            for joiner in joiners {
                if let slot = memberSlot(of: joiner) { changed += join(slot, membershipEpoch: membershipEpoch) }
            }
        }
        var directives: [Directive] = []
        if !changed.isEmpty { directives.append(.persist(changed.sorted().map(record(of:)))) }
        directives.append(.membersChanged(newMembers, membershipEpoch: membershipEpoch))
        return directives
    }

    // MARK: Moves

    /// Makes `newMembers` the members: slots for newcomers, and the ring over them.
    private mutating func adopt(_ newMembers: [WorkerID]) {
        members = newMembers
        memberSlots = newMembers.map { slot(for: $0) }
        ring = ConsistentRing(members: newMembers, salt: salt, virtualNodes: config.virtualNodes)
    }

    private mutating func slot(for worker: WorkerID) -> Int32 {
        if let slot = slotOf[worker] { return slot }
        let slot = Int32(slots.count)
        slots.append(worker)
        slotOf[worker] = slot
        remaining.append(0)
        pending.append(0)
        return slot
    }

    private func memberSlot(of worker: WorkerID) -> Int32? {
        guard let slot = slotOf[worker], memberSlots.contains(slot) else { return nil }
        return slot
    }

    /// Moves every unfinished shard whose owner is not a member to the first member clockwise with room (or the least
    /// loaded when everyone is full), keeping its state and cursor. Returns the moved shards.
    private mutating func placeOrphans(membershipEpoch: UInt64) -> [Int64] {
        var isMember = [Bool](repeating: false, count: slots.count)
        for slot in memberSlots { isMember[Int(slot)] = true }
        var orphans: [Int] = []
        for shard in 0..<owner.count where state[shard] != .done && (owner[shard] < 0 || !isMember[Int(owner[shard])]) {
            orphans.append(shard)
        }
        guard !orphans.isEmpty else { return [] }
        for shard in orphans where owner[shard] >= 0 {
            let slot = Int(owner[shard])
            remaining[slot] -= 1
            if state[shard] == .pending { pending[slot] -= 1 }
            owner[shard] = -1
        }
        guard !members.isEmpty else { return orphans.map(Int64.init) }
        let cap = Placement.capacity(items: shardCount - doneCount, bins: members.count, epsilon: config.epsilon)
        for shard in orphans {
            let point = ConsistentRing.point(ofShard: Int64(shard), salt: salt)
            let member =
                ring.firstMember(from: point) { remaining[Int(memberSlots[$0])] < cap }
                ?? leastLoadedMember()
            give(shard, to: memberSlots[member], membershipEpoch: membershipEpoch)
        }
        return orphans.map(Int64.init)
    }

    /// A joiner takes a fair share of the unstarted shards: first everything above the new capacity from those who
    /// hold more, then up to `unstarted / members`, preferring shards its own ring points claim, then taking from the
    /// most loaded. Returns the moved shards.
    private mutating func join(_ joiner: Int32, membershipEpoch: UInt64) -> [Int64] {
        let n = members.count
        let cap = Placement.capacity(items: shardCount - doneCount, bins: n, epsilon: config.epsilon)
        let others = memberSlots.filter { $0 != joiner }
        let unstarted = memberSlots.reduce(0) { $0 + pending[Int($1)] }
        let fairShare = unstarted / n

        // How many unstarted shards each other member gives: first its excess over the capacity (largest excess
        // first), then, water-filling from the most loaded, whatever brings the joiner to its fair share (never taking
        // anyone below the fair share). The joiner itself never goes over the capacity.
        var budget = max(0, cap - remaining[Int(joiner)])
        // Per slot (an array, not a dictionary: the passes below visit every shard).
        var gives = [Int](repeating: 0, count: slots.count)
        var given = 0
        let excesses = others.map { (slot: $0, excess: min(max(0, remaining[Int($0)] - cap), pending[Int($0)])) }
            .filter { $0.excess > 0 }
            .sorted { $0.excess != $1.excess ? $0.excess > $1.excess : $0.slot < $1.slot }
        for (slot, excess) in excesses where budget > 0 {
            let amount = min(excess, budget)
            gives[Int(slot)] = amount
            given += amount
            budget -= amount
        }
        var want = min(budget, max(0, fairShare - pending[Int(joiner)] - given))
        if want > 0 {
            var donors = others.map { (slot: $0, spare: pending[Int($0)] - gives[Int($0)] - fairShare) }
                .filter { $0.spare > 0 }
            donors.sort { $0.spare != $1.spare ? $0.spare > $1.spare : $0.slot < $1.slot }
            // Level the donors' spare shards down from the top, one level at a time.
            while want > 0, let top = donors.first, top.spare > 0 {
                let tied = donors.prefix { $0.spare == top.spare }.count
                let level = tied < donors.count ? donors[tied].spare : 0
                let step = min(top.spare - level, max(1, want / tied))
                for index in 0..<tied where want > 0 {
                    let amount = min(step, want)
                    gives[Int(donors[index].slot)] += amount
                    donors[index].spare -= amount
                    want -= amount
                }
                donors.sort { $0.spare != $1.spare ? $0.spare > $1.spare : $0.slot < $1.slot }
            }
        }
        var left = gives.reduce(0, +)
        guard left > 0 else { return [] }

        // Which shards: first those whose first choice on the ring is the joiner (the next epoch's placement will
        // likely give them the same owner), then the donors' last ones in epoch order (the ones they would reach
        // last).
        var moved: [Int64] = []
        guard let joinerIndex = members.firstIndex(where: { slotOf[$0] == joiner }) else { return [] }
        let claimed = ring.arcs(of: joinerIndex)
        for shard in 0..<owner.count where left > 0 && state[shard] == .pending {
            let from = Int(owner[shard])
            guard gives[from] > 0, claimed.contains(ConsistentRing.point(ofShard: Int64(shard), salt: salt)) else {
                continue
            }
            gives[from] -= 1
            left -= 1
            take(shard, from: Int32(from), to: joiner, membershipEpoch: membershipEpoch)
            moved.append(Int64(shard))
        }
        for shard in order.reversed() where left > 0 && state[Int(shard)] == .pending {
            let from = Int(owner[Int(shard)])
            guard gives[from] > 0 else { continue }
            gives[from] -= 1
            left -= 1
            take(Int(shard), from: Int32(from), to: joiner, membershipEpoch: membershipEpoch)
            moved.append(shard)
        }
        return moved
    }

    /// The later half of the unstarted shards of the member with the most go to `thief`. Returns them.
    private mutating func steal(into thief: Int32, membershipEpoch: UInt64) -> [Int64] {
        guard
            let victim = memberSlots.filter({ $0 != thief && pending[Int($0)] > 0 })
                .max(by: { pending[Int($0)] != pending[Int($1)] ? pending[Int($0)] < pending[Int($1)] : $0 > $1 })
        else { return [] }
        var left = (pending[Int(victim)] + 1) / 2
        var stolen: [Int64] = []
        for shard in order.reversed() where left > 0 && owner[Int(shard)] == victim && state[Int(shard)] == .pending {
            take(Int(shard), from: victim, to: thief, membershipEpoch: membershipEpoch)
            stolen.append(shard)
            left -= 1
        }
        return stolen
    }

    private mutating func take(_ shard: Int, from: Int32, to: Int32, membershipEpoch: UInt64) {
        remaining[Int(from)] -= 1
        pending[Int(from)] -= 1
        owner[shard] = -1
        give(shard, to: to, membershipEpoch: membershipEpoch)
    }

    private mutating func give(_ shard: Int, to slot: Int32, membershipEpoch: UInt64) {
        owner[shard] = slot
        leaseEpoch[shard] = membershipEpoch
        remaining[Int(slot)] += 1
        if state[shard] == .pending { pending[Int(slot)] += 1 }
    }

    private func leastLoadedMember() -> Int {
        members.indices.min { remaining[Int(memberSlots[$0])] < remaining[Int(memberSlots[$1])] } ?? 0
    }

    /// Replaces a shard's state with a persisted record (restore).
    private mutating func overwrite(_ record: ShardRecord) {
        let index = Int(record.shard)
        if owner[index] >= 0 {
            let slot = Int(owner[index])
            if state[index] != .done { remaining[slot] -= 1 }
            if state[index] == .pending { pending[slot] -= 1 }
        }
        if state[index] == .done { doneCount -= 1 }
        if state[index] == .leased { inProgressCount -= 1 }
        committedSamples -= consumed[index]
        owner[index] = record.owner.map { slot(for: $0) } ?? -1
        state[index] = record.state
        consumed[index] = record.consumed
        leaseEpoch[index] = record.leaseEpoch
        if owner[index] >= 0 {
            let slot = Int(owner[index])
            if state[index] != .done { remaining[slot] += 1 }
            if state[index] == .pending { pending[slot] += 1 }
        }
        if state[index] == .done { doneCount += 1 }
        if state[index] == .leased { inProgressCount += 1 }
        committedSamples += consumed[index]
    }
}

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

/// Which part of a member's assignment to answer: replies stay bounded however many shards the member holds.
public struct AssignmentPage: Sendable, Hashable {
    /// The epoch-order position of the last shard of the previous page; nil for the first page.
    public var after: Int64?
    /// Most shards in this page.
    public var limit: Int

    /// Shards in a page when the client does not say.
    public static let defaultLimit = 16_384
    /// Most shards in a page.
    public static let maxLimit = 65_536

    /// A page of at most `limit` shards after `after`.
    public init(after: Int64? = nil, limit: Int) {
        self.after = after
        self.limit = max(1, limit)
    }

    /// A page as a client asks for it: `token` is empty or a previous reply's ``token(after:)``; `maxShards` is 0 for
    /// ``defaultLimit``.
    ///
    /// - Throws: `invalidArgument` for a token no reply gave, or `maxShards` above ``maxLimit``.
    public init(token: String, maxShards: UInt32) throws(CoreError) {
        guard maxShards <= Self.maxLimit else {
            throw .invalid(
                "max_shards", "must be at most \(Self.maxLimit) (0: \(Self.defaultLimit))", got: String(maxShards))
        }
        limit = maxShards == 0 ? Self.defaultLimit : Int(maxShards)
        guard !token.isEmpty else {
            after = nil
            return
        }
        guard token.hasPrefix("p"), token.count <= 12, let position = Int64(token.dropFirst()), position >= 0,
            position < DatasetSpec.maxShards
        else {
            throw .invalid(
                "page_token", "must be empty (first page) or the next_page_token of the previous reply",
                got: String(token.prefix(40)))
        }
        after = position
    }

    /// The token that asks for the page after `position` (empty when there is none).
    public static func token(after position: Int64?) -> String {
        position.map { "p\($0)" } ?? ""
    }
}

/// Unfinished shards that went to one owner together (a departure's, a joiner's share, a theft): their state and
/// cursor do not change; started ones are leased to the new owner as of `membershipEpoch`.
public struct ShardMove: Sendable, Hashable {
    /// The shards, ascending.
    public var shards: [Int64]
    /// Their new owner; nil when every member departed.
    public var owner: WorkerID?
    /// The task's membership epoch of the move.
    public var membershipEpoch: UInt64

    /// Creates a move.
    public init(shards: [Int64], owner: WorkerID?, membershipEpoch: UInt64) {
        self.shards = shards
        self.owner = owner
        self.membershipEpoch = membershipEpoch
    }
}

/// A durable change of one ledger, replayed in order on top of its initial placement at restore.
public enum LedgerDelta: Sendable, Hashable {
    /// These shards' records, whole.
    case records([ShardRecord])
    /// These unfinished shards changed owner.
    case moved(ShardMove)
}

/// The ledger of one (task, dataset, epoch): which shard is pending, leased or done, and whose it is.
///
/// A pure state machine: every sample of the dataset is committed exactly once per epoch while workers die, leave and
/// join. Shards are placed by bounded-load consistent hashing (``Placement``); afterwards only these moves happen:
/// - a worker dies or leaves: only its unfinished shards move, each to the first survivor clockwise with room, keeping
///   its committed cursor;
/// - a worker joins: it takes a fair share of the *unstarted* shards (first from anyone over capacity, then from the
///   most loaded, the ones they would reach last), and nothing else moves;
/// - a worker runs out: it steals the later half of the unstarted shards of the worker with the most.
/// Reports are idempotent (cursors only move forward) and fenced: only the current owner, at a membership epoch not
/// older than its lease of a started shard, may commit.
///
/// Sized for 2^24 shards: each member's shards are an ascending array of positions in the epoch's ``EpochOrder``
/// (4 bytes a shard; done shards stay, so their owner is known), a bitmap says which are done, and only started,
/// unfinished shards have a record of their own (cursor and lease epoch). A move, an assignment and a report touch
/// the members and shards concerned, never the whole dataset.
public struct ShardLedger: Sendable {
    /// What the shell must persist (together, in order).
    public enum Directive: Sendable, Hashable {
        /// These shard records changed (a report).
        case persist([ShardRecord])
        /// These unfinished shards changed owner.
        case moved(ShardMove)
        /// The ledger now follows these members (rank order), as of this membership epoch.
        case membersChanged([WorkerID], membershipEpoch: UInt64)
    }

    /// Most shards one worker may have claimed and not finished: far more than a reader with prefetching holds, and it
    /// bounds what a client can make the ledger remember.
    public static let maxClaimsPerWorker = 4096

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
    private let order: EpochOrder

    /// Every worker that ever owned a shard here; per-worker arrays are indexed by these slots.
    private var slots: [WorkerID] = []
    private var slotOf: [WorkerID: Int32] = [:]
    /// Current members in rank order, their slots, and the ring over them.
    private var members: [WorkerID] = []
    private var memberSlots: [Int32] = []
    /// Per slot: whether it is a current member's (kept with `memberSlots`, so that finding a member is no search).
    private var isMember: [Bool] = []
    private var ring: ConsistentRing

    /// Per slot: positions of its shards in the epoch order, ascending (done ones included).
    private var owned: [[UInt32]] = []
    /// Per slot: every entry of `owned` before this index is done (advanced as assignments skip them).
    private var doneBefore: [Int] = []
    /// Positions of the shards nobody owns (every member departed), ascending.
    private var unownedPositions: [UInt32] = []
    private var done: ShardBitmap
    /// Started, unfinished shards (claimed or partly committed): their cursor and the lease epoch of their owner.
    private var started: [Int64: (leaseEpoch: UInt64, consumed: Int64)] = [:]
    /// Per slot: owned shards not done, owned shards pending, owned shards started and not done.
    private var remaining: [Int] = []
    private var pending: [Int] = []
    private var claimed: [Int] = []
    /// Per slot: the newest membership epoch at which it was given shards. A pending shard has no lease epoch of its
    /// own, so a claim from a view older than this may come from a process that last saw another assignment (a
    /// restarted worker's old process, say): it is refused as stale, and the worker asks again.
    private var gainedEpoch: [UInt64] = []
    /// Number of done shards.
    public private(set) var doneCount = 0
    /// Samples committed: the cursors of every shard (a done shard's cursor is its length).
    public private(set) var committedSamples: Int64 = 0

    // MARK: Creation

    /// A fresh ledger: shards placed on `members` at `membershipEpoch`.
    public init(
        spec: DatasetSpec, epoch: Int64, members: [WorkerID], membershipEpoch: UInt64,
        config: PlacementConfig = .defaults
    ) {
        self.init(
            empty: spec, epoch: epoch, initialMembers: members, initialMembershipEpoch: membershipEpoch, config: config)
        adopt(members)
        let placed = Placement.place(shardCount: Int(spec.shardCount), ring: ring, salt: salt, epsilon: config.epsilon)
        build(owners: placed.map { $0 >= 0 ? memberSlots[Int($0)] : -1 })
    }

    /// A ledger with no slots and no shards placed, for the initialisers to fill.
    private init(
        empty spec: DatasetSpec, epoch: Int64, initialMembers: [WorkerID], initialMembershipEpoch: UInt64,
        config: PlacementConfig
    ) {
        self.spec = spec
        self.epoch = epoch
        self.config = config
        self.initialMembers = initialMembers
        self.initialMembershipEpoch = initialMembershipEpoch
        salt = Placement.salt(for: spec)
        order = EpochOrder(spec: spec, epoch: epoch)
        ring = ConsistentRing(members: [], salt: salt, virtualNodes: config.virtualNodes)
        done = ShardBitmap(count: Int(spec.shardCount))
    }

    /// A ledger restored from its creation parameters, its persisted changes (replayed in order) and the members it
    /// last followed, then brought up to date with the task's current members. Nothing moves unless membership really
    /// changed, or a shard's owner is not a member (its move was lost in a crash): such shards move now.
    public static func restored(
        spec: DatasetSpec, epoch: Int64, initialMembers: [WorkerID], initialMembershipEpoch: UInt64,
        config: PlacementConfig = .defaults, deltas: [LedgerDelta], lastMembers: [WorkerID],
        lastMembershipEpoch: UInt64, members: [WorkerID], membershipEpoch: UInt64
    ) -> (ledger: ShardLedger, directives: [Directive]) {
        var ledger = ShardLedger(
            spec: spec, epoch: epoch, members: initialMembers, membershipEpoch: initialMembershipEpoch,
            config: config)
        if !deltas.isEmpty { ledger.replay(deltas) }
        return ledger.reconciled(
            lastMembers: lastMembers, lastMembershipEpoch: lastMembershipEpoch, members: members,
            membershipEpoch: membershipEpoch)
    }

    /// A ledger restored from a snapshot (``snapshot()``, checked with ``LedgerSnapshot/problem(spec:)``) and the
    /// changes persisted after it, then brought up to date with the task's current members as
    /// ``restored(spec:epoch:initialMembers:initialMembershipEpoch:config:deltas:lastMembers:lastMembershipEpoch:members:membershipEpoch:)``
    /// does. Nothing looks at every shard: the snapshot's arrays become the ledger's, and the later changes touch only
    /// the shards they name.
    public static func restored(
        spec: DatasetSpec, epoch: Int64, initialMembers: [WorkerID], initialMembershipEpoch: UInt64,
        config: PlacementConfig = .defaults, snapshot: LedgerSnapshot, deltas: [LedgerDelta],
        lastMembers: [WorkerID], lastMembershipEpoch: UInt64, members: [WorkerID], membershipEpoch: UInt64
    ) -> (ledger: ShardLedger, directives: [Directive]) {
        var ledger = ShardLedger(
            empty: spec, epoch: epoch, initialMembers: initialMembers, initialMembershipEpoch: initialMembershipEpoch,
            config: config)
        ledger.load(snapshot)
        if !deltas.isEmpty { ledger.apply(deltas) }
        return ledger.reconciled(
            lastMembers: lastMembers, lastMembershipEpoch: lastMembershipEpoch, members: members,
            membershipEpoch: membershipEpoch)
    }

    /// After a restore: the members the ledger last followed, the moves a crash lost, then the current members.
    private func reconciled(
        lastMembers: [WorkerID], lastMembershipEpoch: UInt64, members: [WorkerID], membershipEpoch: UInt64
    ) -> (ledger: ShardLedger, directives: [Directive]) {
        var ledger = self
        ledger.adopt(lastMembers)
        var directives = ledger.placeOrphans(membershipEpoch: lastMembershipEpoch).map(Directive.moved)
        directives += ledger.syncMembers(members, membershipEpoch: membershipEpoch)
        return (ledger, directives)
    }

    // MARK: Snapshots

    /// The ledger's whole state, to persist: it shares the ledger's arrays (copy-on-write), so taking it copies
    /// nothing but the started shards.
    public func snapshot() -> LedgerSnapshot {
        LedgerSnapshot(
            shardCount: shardCount,
            slots: slots.indices.map { slot in
                LedgerSnapshot.Slot(
                    worker: slots[slot], positions: owned[slot], remaining: remaining[slot], claimed: claimed[slot],
                    gainedEpoch: gainedEpoch[slot])
            },
            members: memberSlots, unownedPositions: unownedPositions, doneWords: done.words,
            started: started.map { LedgerSnapshot.Started(shard: $0.key, leaseEpoch: $0.value.0, consumed: $0.value.1) }
                .sorted { $0.shard < $1.shard },
            doneCount: doneCount, committedSamples: committedSamples)
    }

    /// Takes a checked snapshot's state as the ledger's.
    private mutating func load(_ snapshot: LedgerSnapshot) {
        slots = snapshot.slots.map(\.worker)
        slotOf = Dictionary(uniqueKeysWithValues: slots.enumerated().map { ($1, Int32($0)) })
        owned = snapshot.slots.map(\.positions)
        doneBefore = [Int](repeating: 0, count: slots.count)
        remaining = snapshot.slots.map(\.remaining)
        claimed = snapshot.slots.map(\.claimed)
        pending = snapshot.slots.map { $0.remaining - $0.claimed }
        gainedEpoch = snapshot.slots.map(\.gainedEpoch)
        unownedPositions = snapshot.unownedPositions
        done = ShardBitmap(words: snapshot.doneWords)
        started = Dictionary(
            uniqueKeysWithValues: snapshot.started.map {
                ($0.shard, (leaseEpoch: $0.leaseEpoch, consumed: $0.consumed))
            })
        doneCount = snapshot.doneCount
        committedSamples = snapshot.committedSamples
        // The ring over them is built when the restore adopts the members it last followed.
        members = snapshot.members.map { slots[Int($0)] }
        memberSlots = snapshot.members
        isMember = [Bool](repeating: false, count: slots.count)
        for slot in memberSlots { isMember[Int(slot)] = true }
    }

    // MARK: Queries

    /// Number of shards.
    public var shardCount: Int { Int(spec.shardCount) }

    /// Whether every shard is done.
    public var isComplete: Bool { doneCount == shardCount }

    /// Number of shards started (claimed or partly committed) and not done.
    public var inProgressCount: Int { started.count }

    /// The record of one shard (finding its owner looks at every member's shards: not for hot paths).
    public func record(of shard: Int64) -> ShardRecord {
        let slot = ownerSlot(of: shard)
        return record(of: shard, owner: slot >= 0 ? slots[Int(slot)] : nil)
    }

    /// The owner of every shard, by shard id, in one pass over the members' shards.
    public func owners() -> [WorkerID?] {
        var owners = [WorkerID?](repeating: nil, count: shardCount)
        for (slot, positions) in owned.enumerated() {
            for position in positions { owners[Int(order.shard(at: Int64(position)))] = slots[slot] }
        }
        return owners
    }

    /// Bytes the ledger holds in its per-shard structures (capacity of its arrays, and its started shards at the
    /// size of a dictionary entry), for benchmarks.
    public var approximateBytes: Int {
        owned.reduce(0) { $0 + $1.capacity * 4 } + unownedPositions.capacity * 4 + (shardCount + 63) / 64 * 8
            + started.capacity * 24
    }

    /// The records of every started shard (partly consumed or done), or only of those `owner` holds, by shard id.
    public func startedShards(ownedBy owner: WorkerID? = nil) -> [ShardRecord] {
        var records: [ShardRecord] = []
        func collect(_ positions: [UInt32], _ worker: WorkerID?) {
            for position in positions {
                let shard = order.shard(at: Int64(position))
                if done[Int(shard)] || (started[shard]?.consumed ?? 0) > 0 {
                    records.append(record(of: shard, owner: worker))
                }
            }
        }
        if let owner {
            guard let slot = slotOf[owner] else { return [] }
            collect(owned[Int(slot)], owner)
        } else {
            for slot in slots.indices { collect(owned[slot], slots[slot]) }
            collect(unownedPositions, nil)
        }
        return records.sorted { $0.shard < $1.shard }
    }

    /// Shards not done, per current member (every member listed, in rank order).
    public func remainingPerMember() -> [MemberLoad] {
        zip(members, memberSlots).map { MemberLoad(worker: $0, remaining: remaining[Int($1)]) }
    }

    /// Shards not done and owned by nobody (every member departed).
    public var unowned: Int {
        unownedPositions.count { !done[Int(order.shard(at: Int64($0)))] }
    }

    // MARK: Events

    /// The shards `worker` should read, in epoch order, minus those done. A member with nothing left first steals
    /// from the member with the most unstarted shards. Non-members get nothing.
    public mutating func assignment(for worker: WorkerID, membershipEpoch: UInt64) -> (
        leases: [ShardLease], directives: [Directive]
    ) {
        let page = assignment(for: worker, membershipEpoch: membershipEpoch, page: AssignmentPage(limit: .max))
        return (page.leases, page.directives)
    }

    /// One page of the shards `worker` should read: at most `page.limit` of them, in epoch order, after the position
    /// `page.after` (from the start when nil), and the position to ask from next (nil after the last). Only the first
    /// page steals: a member with nothing left takes from the member with the most unstarted shards.
    public mutating func assignment(for worker: WorkerID, membershipEpoch: UInt64, page: AssignmentPage) -> (
        leases: [ShardLease], next: Int64?, directives: [Directive]
    ) {
        guard let slot = memberSlot(of: worker).map(Int.init) else { return ([], nil, []) }
        var directives: [Directive] = []
        if page.after == nil, remaining[slot] == 0, !isComplete,
            let stolen = steal(into: Int32(slot), membershipEpoch: membershipEpoch)
        {
            directives.append(.moved(stolen))
        }
        // Idle: answer without looking at the shards (idle workers poll).
        guard remaining[slot] > 0 else { return ([], nil, directives) }
        var leases: [ShardLease] = []
        leases.reserveCapacity(min(remaining[slot], page.limit))
        var skipping = page.after == nil
        let start = page.after.map { owned[slot].lowerBound(of: UInt32(clamping: $0 + 1)) } ?? doneBefore[slot]
        var next: Int64?
        for index in max(start, doneBefore[slot])..<owned[slot].count {
            let shard = order.shard(at: Int64(owned[slot][index]))
            if done[Int(shard)] {
                if skipping { doneBefore[slot] = index + 1 }
                continue
            }
            skipping = false
            guard leases.count < page.limit else {
                next = Int64(owned[slot][index - 1])
                break
            }
            leases.append(
                ShardLease(
                    shard: shard, samples: spec.sampleRange(ofShard: shard), consumed: started[shard]?.consumed ?? 0,
                    sampleSeed: EpochShuffle.sampleOrderSeed(seed: spec.seed, epoch: epoch, shard: shard)))
            // A first page holding all the member's unfinished shards is the whole answer: skip the done ones after.
            if page.after == nil, leases.count == remaining[slot] { break }
        }
        return (leases, next, directives)
    }

    /// A worker commits `consumed` samples of `shard` (its cursor in the shard's epoch order); `consumed == 0`
    /// claims the shard (it is no longer given away to joiners). Idempotent: a cursor behind the recorded one
    /// changes nothing.
    ///
    /// - Throws: `invalidArgument` for a shard or cursor out of range; `failedPrecondition` when the shard is not
    ///   leased to this worker or the worker's membership epoch predates the lease (the report is stale);
    ///   `LIMIT_REACHED` for a claim beyond ``maxClaimsPerWorker``.
    public mutating func report(
        worker: WorkerID, membershipEpoch: UInt64, shard: Int64, consumed newConsumed: Int64
    ) throws(CoreError) -> (record: ShardRecord, directives: [Directive]) {
        guard (0..<spec.shardCount).contains(shard) else {
            throw .invalid("shard_id", "must be between 0 and \(spec.shardCount - 1)", got: String(shard))
        }
        let length = Int64(spec.sampleRange(ofShard: shard).count)
        guard (0...length).contains(newConsumed) else {
            throw .invalid("consumed", "must be between 0 and the shard's \(length) samples", got: String(newConsumed))
        }
        let position = UInt32(order.position(of: shard))
        guard let slot = slotOf[worker].map(Int.init), owned[slot].containsSorted(position) else {
            let holder = ownerSlot(of: shard)
            let now =
                holder < 0
                ? "unowned"
                : "leased to \(slots[Int(holder)])"
                    + (started[shard].map { " (since membership epoch \($0.leaseEpoch))" } ?? "")
            throw CoreError(
                .failedPrecondition,
                "shard \(shard) of \(spec.name) epoch \(epoch) is \(now), not to \(worker): its lease moved when "
                    + "membership changed; skip it and ask GetShardAssignment again",
                reason: .shardMoved)
        }
        if let lease = started[shard], membershipEpoch < lease.leaseEpoch {
            throw CoreError(
                .failedPrecondition,
                "stale report: shard \(shard) of \(spec.name) epoch \(epoch) was leased to \(worker) at membership "
                    + "epoch \(lease.leaseEpoch), after this report's epoch \(membershipEpoch)",
                reason: .shardMoved)
        }
        let isDone = done[Int(shard)]
        let previous = isDone ? length : started[shard]?.consumed
        guard !isDone, previous.map({ newConsumed > $0 }) ?? true else {
            return (record(of: shard, owner: worker), [])
        }
        if previous == nil {
            guard membershipEpoch >= gainedEpoch[slot] else {
                throw CoreError(
                    .failedPrecondition,
                    "stale claim: shard \(shard) of \(spec.name) epoch \(epoch) came to \(worker) again at membership "
                        + "epoch \(gainedEpoch[slot]), after this report's epoch \(membershipEpoch): ask "
                        + "GetShardAssignment again",
                    reason: .shardMoved)
            }
            guard claimed[slot] < Self.maxClaimsPerWorker else {
                throw CoreError(
                    .resourceExhausted,
                    "\(worker) already holds \(claimed[slot]) started, unfinished shards of \(spec.name) epoch "
                        + "\(epoch) (at most \(Self.maxClaimsPerWorker)): finish some before claiming more",
                    reason: .limitReached)
            }
            pending[slot] -= 1
            claimed[slot] += 1
        }
        committedSamples += newConsumed - (previous ?? 0)
        if newConsumed == length {
            started[shard] = nil
            claimed[slot] -= 1
            done[Int(shard)] = true
            remaining[slot] -= 1
            doneCount += 1
        } else {
            started[shard] = (started[shard]?.leaseEpoch ?? membershipEpoch, newConsumed)
        }
        let changed = record(of: shard, owner: worker)
        return (changed, [.persist([changed])])
    }

    /// The task's membership changed: shards of departed workers move to survivors (and unowned shards to anyone),
    /// then the joiners take their fair shares of the unstarted shards, all together.
    public mutating func syncMembers(_ newMembers: [WorkerID], membershipEpoch: UInt64) -> [Directive] {
        // A joiner's slot is not a member's: no search of the members for each new member (at 10,000 members that was
        // 10^8 comparisons a change).
        let joiners = newMembers.filter { worker in slotOf[worker].map { !isMember[Int($0)] } ?? true }
        guard joiners.count > 0 || newMembers != members else { return [] }
        adopt(newMembers)
        var moves = placeOrphans(membershipEpoch: membershipEpoch)
        if !isComplete, !joiners.isEmpty {
            // Members now (adopted): their slots without a search of the members.
            moves += join(joiners.compactMap { slotOf[$0] }, membershipEpoch: membershipEpoch)
        }
        return moves.map(Directive.moved) + [.membersChanged(newMembers, membershipEpoch: membershipEpoch)]
    }

    // MARK: Moves

    /// Makes `newMembers` the members: slots for newcomers, and the ring over them.
    private mutating func adopt(_ newMembers: [WorkerID]) {
        for slot in memberSlots { isMember[Int(slot)] = false }
        members = newMembers
        memberSlots = newMembers.map { slot(for: $0) }
        for slot in memberSlots { isMember[Int(slot)] = true }
        ring = ring.with(members: newMembers)
    }

    private mutating func slot(for worker: WorkerID) -> Int32 {
        if let slot = slotOf[worker] { return slot }
        let slot = Int32(slots.count)
        slots.append(worker)
        slotOf[worker] = slot
        owned.append([])
        doneBefore.append(0)
        remaining.append(0)
        pending.append(0)
        claimed.append(0)
        gainedEpoch.append(0)
        isMember.append(false)
        return slot
    }

    private func memberSlot(of worker: WorkerID) -> Int32? {
        guard let slot = slotOf[worker], isMember[Int(slot)] else { return nil }
        return slot
    }

    /// The slot owning `shard`, or -1 when nobody does.
    private func ownerSlot(of shard: Int64) -> Int32 {
        let position = UInt32(order.position(of: shard))
        return Int32(owned.firstIndex { $0.containsSorted(position) } ?? -1)
    }

    private func record(of shard: Int64, owner: WorkerID?) -> ShardRecord {
        if done[Int(shard)] {
            return ShardRecord(
                shard: shard, owner: owner, leaseEpoch: 0, consumed: Int64(spec.sampleRange(ofShard: shard).count),
                state: .done)
        }
        if let lease = started[shard] {
            return ShardRecord(
                shard: shard, owner: owner, leaseEpoch: lease.leaseEpoch, consumed: lease.consumed, state: .leased)
        }
        return ShardRecord(shard: shard, owner: owner, leaseEpoch: 0, consumed: 0, state: .pending)
    }

    /// Moves every unfinished shard whose owner is not a member to the first member clockwise with room (or the least
    /// loaded when everyone is full), keeping its state and cursor. Returns the moves, one per new owner.
    private mutating func placeOrphans(membershipEpoch: UInt64) -> [ShardMove] {
        // Orphans in epoch order: from departed members, and unowned ones.
        var orphans: [UInt32] = []
        for slot in slots.indices where !isMember[slot] && remaining[slot] > 0 {
            let taken = owned[slot].filter { !done[Int(order.shard(at: Int64($0)))] }
            owned[slot].removeSorted(taken)
            doneBefore[slot] = 0
            (remaining[slot], pending[slot], claimed[slot]) = (0, 0, 0)
            orphans.mergeSorted(taken)
        }
        let unownedOrphans = unownedPositions.filter { !done[Int(order.shard(at: Int64($0)))] }
        guard !members.isEmpty else {
            guard !orphans.isEmpty else { return [] }
            unownedPositions.mergeSorted(orphans)
            for position in orphans {
                let shard = order.shard(at: Int64(position))
                if let lease = started[shard] { started[shard] = (membershipEpoch, lease.consumed) }
            }
            return [move(orphans, to: nil, membershipEpoch: membershipEpoch)]
        }
        unownedPositions.removeSorted(unownedOrphans)
        orphans.mergeSorted(unownedOrphans)
        guard !orphans.isEmpty else { return [] }
        let cap = Placement.capacity(items: shardCount - doneCount, bins: members.count, epsilon: config.epsilon)
        var targets = [[UInt32]](repeating: [], count: members.count)
        var loads = memberSlots.map { remaining[Int($0)] }
        for position in orphans {
            let point = ConsistentRing.point(ofShard: order.shard(at: Int64(position)), salt: salt)
            let member =
                ring.firstMember(from: point) { loads[$0] < cap }
                ?? (members.indices.min { loads[$0] < loads[$1] } ?? 0)
            loads[member] += 1
            targets[member].append(position)
        }
        return give(Array(zip(memberSlots, targets)), membershipEpoch: membershipEpoch)
    }

    /// Joiners take a fair share of the unstarted shards: at least `unstarted / members` each when the others can
    /// spare it, and more when the others hold more than the new capacity, up to that capacity; from the donors (the
    /// members that did not join), first their excess over the capacity, then what they hold above the fair share,
    /// levelled from the most loaded; from each donor, the unstarted shards it would reach last. The shards taken are
    /// shared among the joiners evenly (those with the fewest unstarted shards first), and dealt in epoch order, one to
    /// each joiner in turn, so that each joiner's shards lie all over the epoch. Returns the moves, one per joiner
    /// given shards.
    ///
    /// All the joiners one sync takes at once: the joins that arrived while an off-actor sync ran (a join storm), or
    /// a restart's. At 10,000 members, thousands of them each going over every member took seconds.
    private mutating func join(_ joiners: [Int32], membershipEpoch: UInt64) -> [ShardMove] {
        let n = members.count
        let cap = Placement.capacity(items: shardCount - doneCount, bins: n, epsilon: config.epsilon)
        var isJoiner = [Bool](repeating: false, count: slots.count)
        for joiner in joiners { isJoiner[Int(joiner)] = true }
        let donors = memberSlots.filter { !isJoiner[Int($0)] }
        let unstarted = memberSlots.reduce(0) { $0 + pending[Int($1)] }
        let fairShare = unstarted / n

        // How many the joiners take in all: their fair shares, or the donors' excess when that is more, within the
        // joiners' capacity. Levelled down from the most loaded donors, so that joiners whose capacity cannot take
        // every excess leave the excess spread thin rather than whole on a few.
        let budgets = joiners.map { max(0, cap - remaining[Int($0)]) }
        let fairShares = zip(joiners, budgets).reduce(0) { $0 + min($1.1, max(0, fairShare - pending[Int($1.0)])) }
        let excesses = donors.map { slot in (slot, min(max(0, remaining[Int(slot)] - cap), pending[Int(slot)])) }
        var gives = [Int](repeating: 0, count: slots.count)
        let fromExcess = level(excesses, taking: budgets.reduce(0, +), into: &gives)
        let spares = donors.map { slot in (slot, pending[Int(slot)] - gives[Int(slot)] - fairShare) }
        let fromSpares = level(spares, taking: max(0, fairShares - fromExcess), into: &gives)
        let takes = Self.fill(
            fromExcess + fromSpares, levels: joiners.map { pending[Int($0)] }, budgets: budgets)

        var taken: [UInt32] = []
        for donor in donors where gives[Int(donor)] > 0 {
            taken += takeLast(gives[Int(donor)], unstartedFrom: Int(donor))
        }
        guard !taken.isEmpty else { return [] }
        taken.sort()
        // Dealt in turns: each turn, one shard to every joiner still short of its take.
        var dealt = [[UInt32]](repeating: [], count: joiners.count)
        var turn = joiners.indices.filter { takes[$0] > 0 }
        var next = 0
        while next < taken.count, !turn.isEmpty {
            for index in turn where next < taken.count {
                dealt[index].append(taken[next])
                next += 1
            }
            turn.removeAll { dealt[$0].count == takes[$0] }
        }
        return give(Array(zip(joiners, dealt)), membershipEpoch: membershipEpoch)
    }

    /// Shares `amount` among members now holding `levels`, each taking at most its budget: the least loaded are raised
    /// first (to one level, ties in the list's order). `amount` is at most the budgets' sum.
    static func fill(_ amount: Int, levels: [Int], budgets: [Int]) -> [Int] {
        func need(_ level: Int) -> Int { zip(levels, budgets).reduce(0) { $0 + min($1.1, max(0, level - $1.0)) } }
        // The highest level everyone below can be raised to with `amount`.
        var (low, high) = (0, (levels.max() ?? 0) + (budgets.max() ?? 0))
        while low < high {
            let middle = (low + high + 1) / 2
            if need(middle) <= amount { low = middle } else { high = middle - 1 }
        }
        var takes = zip(levels, budgets).map { min($0.1, max(0, low - $0.0)) }
        // The rest, one more each to those at that level who can take it (fewer than them: else the level were higher).
        var left = amount - takes.reduce(0, +)
        for index in takes.indices
        where left > 0 && takes[index] < budgets[index] && levels[index] + takes[index] == low {
            takes[index] += 1
            left -= 1
        }
        return takes
    }

    /// Takes up to `amount` from the `spares` (slot, how many it can give), levelling them down from the largest: one
    /// level at a time, the tied largest giving alike (ties by worker id). Adds what each gives to `gives`; returns
    /// how many were taken in all.
    @discardableResult
    private func level(_ spares: [(slot: Int32, spare: Int)], taking amount: Int, into gives: inout [Int]) -> Int {
        var donors = spares.filter { $0.spare > 0 }
        donors.sort { largerFirst(($0.slot, $0.spare), ($1.slot, $1.spare)) }
        var want = amount
        while want > 0, let top = donors.first, top.spare > 0 {
            let tied = donors.prefix { $0.spare == top.spare }.count
            let level = tied < donors.count ? donors[tied].spare : 0
            let step = min(top.spare - level, max(1, want / tied))
            for index in 0..<tied where want > 0 {
                let taken = min(step, want)
                gives[Int(donors[index].slot)] += taken
                donors[index].spare -= taken
                want -= taken
            }
            donors.sort { largerFirst(($0.slot, $0.spare), ($1.slot, $1.spare)) }
        }
        return amount - want
    }

    /// Orders (slot, amount) pairs by amount, larger first, ties by worker id: the same after a restore, whatever
    /// order the slots were created in.
    private func largerFirst(_ a: (Int32, Int), _ b: (Int32, Int)) -> Bool {
        a.1 != b.1 ? a.1 > b.1 : slots[Int(a.0)] < slots[Int(b.0)]
    }

    /// The later half of the unstarted shards of the member with the most go to `thief`. Returns the move.
    private mutating func steal(into thief: Int32, membershipEpoch: UInt64) -> ShardMove? {
        // One pass, no copy of the members: idle members ask again and again near an epoch's end.
        var found: Int32?
        for slot in memberSlots where slot != thief && pending[Int(slot)] > 0 {
            if let best = found, !largerFirst((slot, pending[Int(slot)]), (best, pending[Int(best)])) { continue }
            found = slot
        }
        guard let victim = found else { return nil }
        let taken = takeLast((pending[Int(victim)] + 1) / 2, unstartedFrom: Int(victim))
        give(taken, to: Int(thief), membershipEpoch: membershipEpoch)
        return move(taken, to: slots[Int(thief)], membershipEpoch: membershipEpoch)
    }

    /// Removes the last `count` unstarted shards (in epoch order) from `slot`; returns their positions, ascending.
    private mutating func takeLast(_ count: Int, unstartedFrom slot: Int) -> [UInt32] {
        var taken: [UInt32] = []
        var index = owned[slot].count - 1
        while taken.count < count, index >= 0 {
            let position = owned[slot][index]
            let shard = order.shard(at: Int64(position))
            if !done[Int(shard)], started[shard] == nil { taken.append(position) }
            index -= 1
        }
        taken.reverse()
        owned[slot].removeSorted(taken)
        doneBefore[slot] = min(doneBefore[slot], owned[slot].count)
        remaining[slot] -= taken.count
        pending[slot] -= taken.count
        return taken
    }

    /// Unfinished shards (ascending positions, taken from their old owner) go to `slot`; started ones are leased to it
    /// as of `membershipEpoch`.
    private mutating func give(_ positions: [UInt32], to slot: Int, membershipEpoch: UInt64) {
        if let first = positions.first {
            doneBefore[slot] = min(doneBefore[slot], owned[slot].lowerBound(of: first))
        }
        owned[slot].mergeSorted(positions)
        gainedEpoch[slot] = max(gainedEpoch[slot], membershipEpoch)
        for position in positions {
            let shard = order.shard(at: Int64(position))
            remaining[slot] += 1
            if let lease = started[shard] {
                started[shard] = (membershipEpoch, lease.consumed)
                claimed[slot] += 1
            } else {
                pending[slot] += 1
            }
        }
    }

    /// Gives each slot its positions (ascending); returns a move for each slot given any.
    private mutating func give(_ shares: [(slot: Int32, positions: [UInt32])], membershipEpoch: UInt64) -> [ShardMove] {
        var moves: [ShardMove] = []
        for (slot, positions) in shares where !positions.isEmpty {
            give(positions, to: Int(slot), membershipEpoch: membershipEpoch)
            moves.append(move(positions, to: slots[Int(slot)], membershipEpoch: membershipEpoch))
        }
        return moves
    }

    private func move(_ positions: [UInt32], to owner: WorkerID?, membershipEpoch: UInt64) -> ShardMove {
        ShardMove(
            shards: positions.map { order.shard(at: Int64($0)) }.sorted(), owner: owner,
            membershipEpoch: membershipEpoch)
    }

    // MARK: Building

    /// Fills the per-slot position arrays and counters from an owner slot per shard (-1: nobody).
    private mutating func build(owners: [Int32]) {
        for slot in owned.indices {
            owned[slot] = []
            doneBefore[slot] = 0
            (remaining[slot], pending[slot], claimed[slot]) = (0, 0, 0)
        }
        unownedPositions = []
        var counts = [Int](repeating: 0, count: slots.count)
        for owner in owners where owner >= 0 { counts[Int(owner)] += 1 }
        for slot in owned.indices { owned[slot].reserveCapacity(counts[slot]) }
        for position in 0..<spec.shardCount {
            let shard = order.shard(at: position)
            let slot = owners[Int(shard)]
            guard slot >= 0 else {
                unownedPositions.append(UInt32(position))
                continue
            }
            owned[Int(slot)].append(UInt32(position))
            if done[Int(shard)] { continue }
            remaining[Int(slot)] += 1
            if started[shard] != nil { claimed[Int(slot)] += 1 } else { pending[Int(slot)] += 1 }
        }
    }

    /// Replays persisted changes on top of the current placement (restore).
    private mutating func replay(_ deltas: [LedgerDelta]) {
        var owners = [Int32](repeating: -1, count: shardCount)
        for (slot, positions) in owned.enumerated() {
            for position in positions { owners[Int(order.shard(at: Int64(position)))] = Int32(slot) }
        }
        for delta in deltas {
            switch delta {
            case .records(let records):
                for record in records where (0..<spec.shardCount).contains(record.shard) {
                    let index = Int(record.shard)
                    committedSamples -= done[index] ? Int64(spec.sampleRange(ofShard: record.shard).count) : 0
                    committedSamples -= started[record.shard]?.consumed ?? 0
                    if done[index] { doneCount -= 1 }
                    owners[index] = record.owner.map { slot(for: $0) } ?? -1
                    done[index] = record.state == .done
                    started[record.shard] = record.state == .leased ? (record.leaseEpoch, record.consumed) : nil
                    committedSamples += done[index] ? Int64(spec.sampleRange(ofShard: record.shard).count) : 0
                    committedSamples += started[record.shard]?.consumed ?? 0
                    if done[index] { doneCount += 1 }
                }
            case .moved(let move):
                let target = move.owner.map { slot(for: $0) } ?? -1
                if target >= 0 { gainedEpoch[Int(target)] = max(gainedEpoch[Int(target)], move.membershipEpoch) }
                for shard in move.shards where (0..<spec.shardCount).contains(shard) && !done[Int(shard)] {
                    owners[Int(shard)] = target
                    if let lease = started[shard] { started[shard] = (move.membershipEpoch, lease.consumed) }
                }
            }
        }
        build(owners: owners)
    }

    /// Applies persisted changes on top of the current state (a snapshot's later changes), with the effect
    /// ``replay(_:)`` has, looking only at the shards they name.
    private mutating func apply(_ deltas: [LedgerDelta]) {
        let count = spec.shardCount
        // The shards the changes name, and who owns each now.
        var named = Set<Int64>()
        for delta in deltas {
            switch delta {
            case .records(let records):
                for record in records where (0..<count).contains(record.shard) {
                    named.insert(record.shard)
                }
            case .moved(let move): for shard in move.shards where (0..<count).contains(shard) { named.insert(shard) }
            }
        }
        let positions = named.map { UInt32(order.position(of: $0)) }.sorted()
        let before = ownerSlots(ofPositions: positions)
        // Each named shard's owner, whether it is done, and its lease, as the changes leave them.
        typealias State = (owner: Int32, done: Bool, lease: (leaseEpoch: UInt64, consumed: Int64)?)
        var after: [Int64: State] = [:]
        for (index, position) in positions.enumerated() {
            let shard = order.shard(at: Int64(position))
            after[shard] = (before[index], done[Int(shard)], started[shard])
        }
        for delta in deltas {
            switch delta {
            case .records(let records):
                for record in records where (0..<count).contains(record.shard) {
                    after[record.shard] = (
                        record.owner.map { slot(for: $0) } ?? -1, record.state == .done,
                        record.state == .leased ? (record.leaseEpoch, record.consumed) : nil
                    )
                }
            case .moved(let move):
                let target = move.owner.map { slot(for: $0) } ?? -1
                if target >= 0 { gainedEpoch[Int(target)] = max(gainedEpoch[Int(target)], move.membershipEpoch) }
                for shard in move.shards where (0..<count).contains(shard) {
                    guard var state = after[shard], !state.done else { continue }
                    state.owner = target
                    if let lease = state.lease { state.lease = (move.membershipEpoch, lease.consumed) }
                    after[shard] = state
                }
            }
        }
        // Take each named shard out of its old owner's counts and put it into its new one's.
        var removed = [Int32: [UInt32]]()
        var added = [Int32: [UInt32]]()
        for (index, position) in positions.enumerated() {
            let shard = order.shard(at: Int64(position))
            let length = Int64(spec.sampleRange(ofShard: shard).count)
            let old = (owner: before[index], done: done[Int(shard)], lease: started[shard])
            guard let new = after[shard] else { continue }
            if old.owner >= 0, !old.done {
                remaining[Int(old.owner)] -= 1
                if old.lease != nil { claimed[Int(old.owner)] -= 1 } else { pending[Int(old.owner)] -= 1 }
            }
            if new.owner >= 0, !new.done {
                remaining[Int(new.owner)] += 1
                if new.lease != nil { claimed[Int(new.owner)] += 1 } else { pending[Int(new.owner)] += 1 }
            }
            committedSamples +=
                (new.done ? length : new.lease?.consumed ?? 0) - (old.done ? length : old.lease?.consumed ?? 0)
            doneCount += (new.done ? 1 : 0) - (old.done ? 1 : 0)
            done[Int(shard)] = new.done
            started[shard] = new.done ? nil : new.lease
            if old.owner != new.owner {
                removed[old.owner, default: []].append(position)
                added[new.owner, default: []].append(position)
            }
        }
        // Positions were visited ascending, so every list is ascending.
        for (slot, positions) in removed {
            if slot >= 0 { owned[Int(slot)].removeSorted(positions) } else { unownedPositions.removeSorted(positions) }
        }
        for (slot, positions) in added {
            if slot >= 0 { owned[Int(slot)].mergeSorted(positions) } else { unownedPositions.mergeSorted(positions) }
        }
        for slot in doneBefore.indices { doneBefore[slot] = 0 }
    }

    /// The slot owning each of `positions` (ascending), -1 for none: per slot, a binary search per position or one
    /// merge, whichever is cheaper; when there are too many for that, a table over every position.
    private func ownerSlots(ofPositions positions: [UInt32]) -> [Int32] {
        var owners = [Int32](repeating: -1, count: positions.count)
        guard !positions.isEmpty else { return owners }
        if slots.count * positions.count > 4 * shardCount {
            var table = [Int32](repeating: -1, count: shardCount)
            for (slot, mine) in owned.enumerated() {
                for position in mine { table[Int(position)] = Int32(slot) }
            }
            for (index, position) in positions.enumerated() { owners[index] = table[Int(position)] }
            return owners
        }
        for (slot, mine) in owned.enumerated() where !mine.isEmpty {
            var steps = 1
            while 1 << steps < mine.count { steps += 1 }
            if positions.count * steps < mine.count + positions.count {
                for (index, position) in positions.enumerated() where mine.containsSorted(position) {
                    owners[index] = Int32(slot)
                }
            } else {
                var i = 0
                var j = 0
                while i < mine.count, j < positions.count {
                    if mine[i] < positions[j] {
                        i += 1
                    } else if mine[i] > positions[j] {
                        j += 1
                    } else {
                        owners[j] = Int32(slot)
                        i += 1
                        j += 1
                    }
                }
            }
        }
        return owners
    }
}

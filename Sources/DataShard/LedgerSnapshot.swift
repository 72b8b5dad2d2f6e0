public import RuntimeCore

/// A ledger's whole state at one moment, as the database keeps it so that a restart rebuilds the ledger from it (plus
/// the changes written after it) without recomputing the initial placement or looking at the ring per shard.
///
/// It holds what ``ShardLedger`` holds: per worker that ever owned a shard here (a slot), its ascending positions in
/// the epoch order, its counters and the epoch it last gained shards at; the positions nobody owns; the done bitmap;
/// the started shards; the members. ``ShardLedger/snapshot()`` takes one (the arrays are shared copy-on-write, so
/// taking it copies nothing) and ``ShardLedger/restored(spec:epoch:initialMembers:initialMembershipEpoch:config:snapshot:deltas:lastMembers:lastMembershipEpoch:members:membershipEpoch:)`` checks it and rebuilds the ledger.
public struct LedgerSnapshot: Sendable, Hashable {
    /// A started, unfinished shard: its cursor and its owner's lease epoch.
    public struct Started: Sendable, Hashable {
        /// The shard.
        public var shard: Int64
        /// The membership epoch of its owner's lease.
        public var leaseEpoch: UInt64
        /// Samples committed.
        public var consumed: Int64

        /// Creates an entry.
        public init(shard: Int64, leaseEpoch: UInt64, consumed: Int64) {
            self.shard = shard
            self.leaseEpoch = leaseEpoch
            self.consumed = consumed
        }
    }

    /// One worker that owned shards here.
    public struct Slot: Sendable, Hashable {
        /// The worker.
        public var worker: WorkerID
        /// Its shards' positions in the epoch order, ascending (done ones included).
        public var positions: [UInt32]
        /// Its shards not done.
        public var remaining: Int
        /// Its shards started and not done.
        public var claimed: Int
        /// The newest membership epoch at which it was given shards.
        public var gainedEpoch: UInt64

        /// Creates a slot.
        public init(worker: WorkerID, positions: [UInt32], remaining: Int, claimed: Int, gainedEpoch: UInt64) {
            self.worker = worker
            self.positions = positions
            self.remaining = remaining
            self.claimed = claimed
            self.gainedEpoch = gainedEpoch
        }
    }

    /// Number of shards of the ledger's dataset.
    public var shardCount: Int
    /// Every worker that ever owned a shard, in slot order.
    public var slots: [Slot]
    /// The members (indices into `slots`), in rank order.
    public var members: [Int32]
    /// Positions nobody owns, ascending.
    public var unownedPositions: [UInt32]
    /// The done bitmap by shard id, 64 shards a word (bit `i % 64` of word `i / 64`).
    public var doneWords: [UInt64]
    /// Started, unfinished shards, ascending by shard.
    public var started: [Started]
    /// Shards done.
    public var doneCount: Int
    /// Samples committed.
    public var committedSamples: Int64

    /// Creates a snapshot (``ShardLedger/snapshot()`` takes one from a ledger; decoders build one from bytes).
    public init(
        shardCount: Int, slots: [Slot], members: [Int32], unownedPositions: [UInt32], doneWords: [UInt64],
        started: [Started], doneCount: Int, committedSamples: Int64
    ) {
        self.shardCount = shardCount
        self.slots = slots
        self.members = members
        self.unownedPositions = unownedPositions
        self.doneWords = doneWords
        self.started = started
        self.doneCount = doneCount
        self.committedSamples = committedSamples
    }

    /// Hashes the sizes only (equal snapshots still hash alike): a snapshot rides in a change that is hashable, and
    /// hashing megabytes of positions is never wanted.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(shardCount)
        hasher.combine(doneCount)
        hasher.combine(committedSamples)
        hasher.combine(slots.count)
    }

    /// What makes this snapshot unfit for a ledger of `spec`, or nil when it is consistent: every position owned
    /// exactly once, ascending; counters within what each slot holds; the done count and bitmap agreeing; started
    /// shards unfinished with a cursor inside the shard. One pass over a bitmap of the shards, no pass over the order.
    public func problem(spec: DatasetSpec) -> String? {
        let count = Int(spec.shardCount)
        guard shardCount == count else { return "\(shardCount) shards where the dataset has \(count)" }
        guard doneWords.count == (count + 63) / 64 else { return "a done bitmap of the wrong size" }
        if count % 64 != 0, let last = doneWords.last, last >> UInt64(count % 64) != 0 {
            return "done bits beyond the last shard"
        }
        guard doneWords.reduce(0, { $0 + $1.nonzeroBitCount }) == doneCount else {
            return "a done count that disagrees with its bitmap"
        }
        var seen = [UInt64](repeating: 0, count: (count + 63) / 64)
        func mark(_ positions: [UInt32]) -> String? {
            var previous: Int = -1
            for position in positions {
                let index = Int(position)
                guard index > previous, index < count else { return "positions out of order or beyond the dataset" }
                previous = index
                let bit: UInt64 = 1 << UInt64(index & 63)
                guard seen[index >> 6] & bit == 0 else { return "a shard owned twice" }
                seen[index >> 6] |= bit
            }
            return nil
        }
        var workers = Set<WorkerID>()
        for slot in slots {
            guard workers.insert(slot.worker).inserted else { return "a worker listed twice" }
            guard slot.claimed >= 0, slot.claimed <= slot.remaining, slot.remaining <= slot.positions.count else {
                return "counters beyond what a worker holds"
            }
            if let problem = mark(slot.positions) { return problem }
        }
        if let problem = mark(unownedPositions) { return problem }
        guard seen.reduce(0, { $0 + $1.nonzeroBitCount }) == count else { return "shards nobody holds" }
        guard Set(members).count == members.count, members.allSatisfy({ (0..<Int32(slots.count)).contains($0) }) else {
            return "members that are not slots"
        }
        var previous: Int64 = -1
        for entry in started {
            guard entry.shard > previous, entry.shard < spec.shardCount else {
                return "started shards out of order or beyond the dataset"
            }
            previous = entry.shard
            guard doneWords[Int(entry.shard) >> 6] & (1 << UInt64(entry.shard & 63)) == 0 else {
                return "a started shard that is done"
            }
            guard entry.consumed >= 0, entry.consumed < Int64(spec.sampleRange(ofShard: entry.shard).count) else {
                return "a cursor beyond its shard"
            }
        }
        guard committedSamples >= 0, committedSamples <= spec.totalSamples else {
            return "more samples committed than the dataset holds"
        }
        return nil
    }
}

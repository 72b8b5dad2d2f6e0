public import RuntimeCore

/// A consistent-hashing ring of workers with virtual nodes: each worker owns `virtualNodes` points, and a shard
/// belongs to the first worker point at or after the shard's point (wrapping around).
///
/// Points are SplitMix64 mixes (see docs/SHARDING.md), so the ring depends only on the worker ids and the salt, never
/// on the order workers are given in: adding a worker takes over the arcs in front of its points and moves nothing
/// else.
public struct ConsistentRing: Sendable {
    /// The workers, in the order given (shard owners are indices into this array).
    public let members: [WorkerID]
    /// Ring points in increasing order, and the member index owning each.
    private let points: [UInt64]
    private let owners: [Int32]
    /// Per bucket of the hash space (its top `bucketBits` bits), the index of the first point at or after the
    /// bucket's start: a lookup jumps there and walks the bucket's few points instead of binary-searching the whole
    /// ring (creating a ledger looks up every shard, 2^24 of them at most).
    private let bucketStarts: [Int32]
    private let bucketShift: UInt64

    /// The salt the points were mixed with.
    private let salt: UInt64
    /// Points per member.
    private let virtualNodes: Int

    /// Builds the ring of `members` (which must not repeat) with `virtualNodes` points each.
    public init(members: [WorkerID], salt: UInt64, virtualNodes: Int) {
        let entries = Self.sortedEntries(of: members, from: 0, salt: salt, virtualNodes: virtualNodes)
        self.init(
            members: members, points: entries.map(\.point), owners: entries.map(\.owner), salt: salt,
            virtualNodes: virtualNodes)
    }

    private init(members: [WorkerID], points: [UInt64], owners: [Int32], salt: UInt64, virtualNodes: Int) {
        self.members = members
        self.points = points
        self.owners = owners
        self.salt = salt
        self.virtualNodes = virtualNodes
        // About one point per bucket, between 2^4 and 2^20 buckets.
        var bits: UInt64 = 4
        while bits < 20, (1 << bits) < points.count { bits += 1 }
        bucketShift = 64 - bits
        var starts = [Int32](repeating: 0, count: (1 << Int(bits)) + 1)
        var index = 0
        for bucket in 0..<(1 << Int(bits)) {
            let start = UInt64(bucket) << (64 - bits)
            while index < points.count, points[index] < start { index += 1 }
            starts[bucket] = Int32(index)
        }
        starts[1 << Int(bits)] = Int32(points.count)
        bucketStarts = starts
    }

    /// The points of `members`, owned by their indices counted from `first`, in ring order.
    private static func sortedEntries(of members: [WorkerID], from first: Int, salt: UInt64, virtualNodes: Int)
        -> [(point: UInt64, owner: Int32)]
    {
        var entries: [(point: UInt64, owner: Int32)] = []
        entries.reserveCapacity(members.count * virtualNodes)
        for (index, member) in members.enumerated() {
            let base = EpochShuffle.mix(Self.fnv1a(member.rawValue) ^ salt)
            for node in 0..<virtualNodes {
                entries.append((EpochShuffle.mix(base ^ UInt64(node)), Int32(first + index)))
            }
        }
        // Ties (astronomically unlikely) are broken by worker id, so the ring never depends on the input order.
        entries.sort { a, b in
            a.point != b.point
                ? a.point < b.point : members[Int(a.owner) - first] < members[Int(b.owner) - first]
        }
        return entries
    }

    /// The ring of `newMembers` (which must not repeat), equal to ``init(members:salt:virtualNodes:)``'s, made from
    /// this one: the members kept (in their order) lose nothing, those gone take their points with them, and those
    /// after the kept ones add theirs. A membership change then costs one pass over the points and a sort of the
    /// joiners' points, not a sort of all of them: at 10,000 members (640,000 points) a ledger's leave, which rebuilt
    /// the ring, took 80 ms (`dtr bench placement`).
    public func with(members newMembers: [WorkerID]) -> ConsistentRing {
        // The longest run of `newMembers` from its start that keeps the old order, matched greedily; the rest joins.
        var renumbered = [Int32](repeating: -1, count: members.count)
        var kept = 0
        for (index, member) in members.enumerated() where kept < newMembers.count && newMembers[kept] == member {
            renumbered[index] = Int32(kept)
            kept += 1
        }
        let joiners = Array(newMembers[kept...])
        let added = Self.sortedEntries(of: joiners, from: kept, salt: salt, virtualNodes: virtualNodes)
        var points: [UInt64] = []
        var owners: [Int32] = []
        points.reserveCapacity(kept * virtualNodes + added.count)
        owners.reserveCapacity(kept * virtualNodes + added.count)
        // Merges the kept points (renumbered) with the joiners', in ring order with ties broken by worker id.
        var next = 0
        func takeAdded(upTo point: UInt64, before member: WorkerID) {
            while next < added.count,
                added[next].point < point
                    || (added[next].point == point && newMembers[Int(added[next].owner)] < member)
            {
                points.append(added[next].point)
                owners.append(added[next].owner)
                next += 1
            }
        }
        for index in self.points.indices {
            let owner = renumbered[Int(self.owners[index])]
            guard owner >= 0 else { continue }
            takeAdded(upTo: self.points[index], before: newMembers[Int(owner)])
            points.append(self.points[index])
            owners.append(owner)
        }
        for entry in added[next...] {
            points.append(entry.point)
            owners.append(entry.owner)
        }
        return ConsistentRing(
            members: newMembers, points: points, owners: owners, salt: salt, virtualNodes: virtualNodes)
    }

    /// The point of a shard on rings with this salt.
    public static func point(ofShard shard: Int64, salt: UInt64) -> UInt64 {
        EpochShuffle.mix(salt ^ UInt64(bitPattern: shard))
    }

    /// Whether the ring has no points.
    public var isEmpty: Bool { points.isEmpty }

    /// The member that owns `point` when capacity is ignored; nil on an empty ring.
    public func firstChoice(for point: UInt64) -> Int? {
        isEmpty ? nil : Int(owners[successor(of: point)])
    }

    /// The points whose first choice is `member`: the arcs that end at its points, as a set that answers membership in
    /// a few steps (a member has `virtualNodes` arcs, against `members × virtualNodes` points on the ring).
    public func arcs(of member: Int) -> ArcSet {
        var ranges: [ClosedRange<UInt64>] = []
        for index in points.indices where owners[index] == Int32(member) {
            let end = points[index]
            if index == 0 {
                // Wraps around: everything after the last point, and everything up to this one.
                if let last = points.last, last < UInt64.max { ranges.append((last + 1)...UInt64.max) }
                ranges.append(0...end)
            } else if points[index - 1] < end {
                ranges.append((points[index - 1] + 1)...end)
            }
        }
        return ArcSet(ranges.sorted { $0.lowerBound < $1.lowerBound })
    }

    /// Walks the ring from `point`'s owner and returns the first member for which `accepts` is true (a member with
    /// several points may be asked again), or nil after a full turn.
    public func firstMember(from point: UInt64, where accepts: (Int) -> Bool) -> Int? {
        guard !isEmpty else { return nil }
        var index = successor(of: point)
        for _ in 0..<points.count {
            let member = Int(owners[index])
            if accepts(member) { return member }
            index = index + 1 == points.count ? 0 : index + 1
        }
        return nil
    }

    /// Index of the first point at or after `point`, wrapping to 0.
    private func successor(of point: UInt64) -> Int {
        let bucket = Int(point >> bucketShift)
        var low = Int(bucketStarts[bucket])
        var high = Int(bucketStarts[bucket + 1])
        while low < high {
            let middle = (low + high) / 2
            if points[middle] < point { low = middle + 1 } else { high = middle }
        }
        return low == points.count ? 0 : low
    }

    /// FNV-1a, 64 bits, over the UTF-8 bytes: the worker id's hash.
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }
}

/// Two rings are equal when they have the same members in the same order, the same points with the same owners, and
/// the same salt and points per member.
extension ConsistentRing: Equatable {}

/// Disjoint ranges of ring points, sorted, with a binary-search membership test.
public struct ArcSet: Sendable {
    private let ranges: [ClosedRange<UInt64>]

    init(_ sorted: [ClosedRange<UInt64>]) {
        ranges = sorted
    }

    /// Whether `point` lies in one of the ranges.
    public func contains(_ point: UInt64) -> Bool {
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].upperBound < point { low = middle + 1 } else { high = middle }
        }
        return low < ranges.count && ranges[low].contains(point)
    }
}

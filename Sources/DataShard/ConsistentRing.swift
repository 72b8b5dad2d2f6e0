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

    /// Builds the ring of `members` (which must not repeat) with `virtualNodes` points each.
    public init(members: [WorkerID], salt: UInt64, virtualNodes: Int) {
        self.members = members
        var entries: [(point: UInt64, owner: Int32)] = []
        entries.reserveCapacity(members.count * virtualNodes)
        for (index, member) in members.enumerated() {
            let base = EpochShuffle.mix(Self.fnv1a(member.rawValue) ^ salt)
            for node in 0..<virtualNodes {
                entries.append((EpochShuffle.mix(base ^ UInt64(node)), Int32(index)))
            }
        }
        // Ties (astronomically unlikely) are broken by worker id, so the ring never depends on the input order.
        entries.sort { a, b in
            a.point != b.point ? a.point < b.point : members[Int(a.owner)] < members[Int(b.owner)]
        }
        points = entries.map(\.point)
        owners = entries.map(\.owner)
        // About one point per bucket, between 2^4 and 2^20 buckets.
        var bits: UInt64 = 4
        while bits < 20, (1 << bits) < entries.count { bits += 1 }
        bucketShift = 64 - bits
        var starts = [Int32](repeating: 0, count: (1 << Int(bits)) + 1)
        var index = 0
        for bucket in 0..<(1 << Int(bits)) {
            let start = UInt64(bucket) << (64 - bits)
            while index < entries.count, entries[index].point < start { index += 1 }
            starts[bucket] = Int32(index)
        }
        starts[1 << Int(bits)] = Int32(entries.count)
        bucketStarts = starts
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

public import RuntimeCore

/// How shards are spread over workers.
public struct PlacementConfig: Sendable, Hashable {
    /// Load slack: no worker holds more than `ceil((1+ε)·shards/workers)` shards. Default 0.05.
    public let epsilon: Double
    /// Ring points per worker. More points spread first choices more evenly; the capacity bound holds regardless.
    public let virtualNodes: Int

    /// Validates a configuration.
    public init(epsilon: Double = 0.05, virtualNodes: Int = 64) throws(CoreError) {
        guard epsilon.isFinite, epsilon > 0, epsilon <= 1 else {
            throw .invalid("placement epsilon", "must be greater than 0 and at most 1", got: "\(epsilon)")
        }
        guard (1...1024).contains(virtualNodes) else {
            throw .invalid("virtual nodes", "must be between 1 and 1024", got: "\(virtualNodes)")
        }
        self.epsilon = epsilon
        self.virtualNodes = virtualNodes
    }

    private init(unchecked epsilon: Double, virtualNodes: Int) {
        self.epsilon = epsilon
        self.virtualNodes = virtualNodes
    }

    /// ε = 0.05, 64 points per worker.
    public static let defaults = PlacementConfig(unchecked: 0.05, virtualNodes: 64)
}

/// Bounded-load consistent hashing (Mirrokni, Thorup & Zadimoghaddam, "Consistent Hashing with Bounded Loads",
/// 2018): each shard goes to the first worker clockwise from its point on the ring that still has room under the
/// capacity `ceil((1+ε)·shards/workers)`.
///
/// A pure function of the member set, the shard count and the salt: with the same members, every epoch places every
/// shard on the same worker (cache locality), whatever order the members are listed in.
public enum Placement {
    /// Domain separation for the placement salt: ASCII "dtr.plce".
    public static let saltDomain: UInt64 = 0x6474_722E_706C_6365

    /// The ring salt of a dataset: datasets spread differently, epochs of one dataset identically.
    public static func salt(for spec: DatasetSpec) -> UInt64 {
        EpochShuffle.mix(spec.seed ^ saltDomain)
    }

    /// `ceil((1+ε)·items/bins)`, at least 1; 0 when there are no items.
    public static func capacity(items: Int, bins: Int, epsilon: Double) -> Int {
        guard items > 0, bins > 0 else { return 0 }
        return max(1, Int(((1 + epsilon) * Double(items) / Double(bins)).rounded(.up)))
    }

    /// The owner (an index into `ring.members`) of each shard `0..<shardCount`; -1 everywhere when the ring is empty.
    public static func place(shardCount: Int, ring: ConsistentRing, salt: UInt64, epsilon: Double) -> [Int32] {
        var owners = [Int32](repeating: -1, count: shardCount)
        guard !ring.isEmpty else { return owners }
        let cap = capacity(items: shardCount, bins: ring.members.count, epsilon: epsilon)
        var loads = [Int](repeating: 0, count: ring.members.count)
        for shard in 0..<shardCount {
            let point = ConsistentRing.point(ofShard: Int64(shard), salt: salt)
            // Total capacity exceeds the shard count, so someone always has room.
            let owner = ring.firstMember(from: point) { loads[$0] < cap } ?? 0
            loads[owner] += 1
            owners[shard] = Int32(owner)
        }
        return owners
    }
}

public import RuntimeCore

/// A registered dataset: how many samples it has, how they are cut into shards, and how they are shuffled.
///
/// Shards are contiguous ranges of sample indices: shard `i` covers `[i * shardSize, min((i+1) * shardSize, total))`,
/// so there are `ceil(totalSamples / shardSize)` of them and only the last may be shorter.
public struct DatasetSpec: Sendable, Hashable {
    /// Largest accepted number of samples (2^40).
    public static let maxSamples: Int64 = 1 << 40
    /// Largest accepted number of shards (2^24): a ledger keeps about 4 bytes per shard per retained epoch.
    public static let maxShards: Int64 = 1 << 24

    /// 1-128 characters of `[A-Za-z0-9._-]`.
    public let name: String
    /// 1...2^40.
    public let totalSamples: Int64
    /// 1...totalSamples.
    public let shardSize: Int64
    /// Whether shard and sample order are permuted per epoch.
    public let shuffle: Bool
    /// Seed of the per-epoch permutations.
    public let seed: UInt64

    /// Validates a dataset specification sent by a client.
    public init(name: String, totalSamples: Int64, shardSize: Int64, shuffle: Bool, seed: UInt64) throws(CoreError) {
        _ = try Validation.name(name)
        guard (1...Self.maxSamples).contains(totalSamples) else {
            throw .invalid("total_samples", "must be between 1 and 2^40", got: String(totalSamples))
        }
        guard (1...totalSamples).contains(shardSize) else {
            throw .invalid(
                "shard_size", "must be between 1 and total_samples (\(totalSamples))", got: String(shardSize))
        }
        let shards = (totalSamples + shardSize - 1) / shardSize
        guard shards <= Self.maxShards else {
            throw .invalid(
                "shard_size", "must give at most 2^24 shards (ceil(total_samples / shard_size)): use larger shards",
                got: "\(shardSize): \(shards) shards")
        }
        self.name = name
        self.totalSamples = totalSamples
        self.shardSize = shardSize
        self.shuffle = shuffle
        self.seed = seed
    }

    /// `ceil(totalSamples / shardSize)`.
    public var shardCount: Int64 { (totalSamples + shardSize - 1) / shardSize }

    /// The sample indices of shard `shard`, which must be in `0..<shardCount`.
    public func sampleRange(ofShard shard: Int64) -> Range<Int64> {
        precondition((0..<shardCount).contains(shard), "shard \(shard) out of 0..<\(shardCount)")
        let start = shard * shardSize
        return start..<min(start + shardSize, totalSamples)
    }
}

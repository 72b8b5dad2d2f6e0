/// The order in which one epoch visits a dataset's shards, as a bijection between positions and shard ids that is
/// computed, never stored: a ledger of 2^24 shards needs both directions for every report and assignment, and two
/// tables of them would cost 8 bytes per shard.
///
/// Specified in docs/SHARDING.md and implemented identically in `python/dtruntime/shuffle.py`:
/// - `bits` is the smallest even number ≥ 2 with `2^bits ≥ shardCount`; `half = bits / 2`.
/// - Round keys `k_r = mix(s ^ r)` for `r` in 0..<4, where `s` is ``EpochShuffle/shardOrderSeed(seed:epoch:)``.
/// - One Feistel pass over `x < 2^bits`: `L = x >> half`, `R = x & (2^half - 1)`; four times `(L, R) = (R, L ^ (mix(R ^
///   k_r) & (2^half - 1)))`; the result is `L << half | R`. It is a permutation of `0..<2^bits`.
/// - Cycle walking keeps it in `0..<shardCount`: the shard at position `p` is the first of `pass(p)`,
///   `pass(pass(p))`, ... below `shardCount` (fewer than 4 passes on average, since `2^bits < 4·shardCount`).
/// A dataset registered without `shuffle` visits its shards in id order.
public struct EpochOrder: Sendable {
    /// Number of shards.
    public let shardCount: Int64
    private let shuffled: Bool
    private let half: UInt64
    private let mask: UInt64
    private let keys: (UInt64, UInt64, UInt64, UInt64)

    /// The order of `epoch` over `spec`'s shards.
    public init(spec: DatasetSpec, epoch: Int64) {
        self.init(
            shardCount: spec.shardCount, shuffle: spec.shuffle,
            seed: EpochShuffle.shardOrderSeed(seed: spec.seed, epoch: epoch))
    }

    /// The order of `shardCount` shards driven by `seed` (the epoch's shard-order seed).
    public init(shardCount: Int64, shuffle: Bool, seed: UInt64) {
        self.shardCount = shardCount
        shuffled = shuffle && shardCount > 1
        var bits: UInt64 = 2
        while (Int64(1) << bits) < shardCount { bits += 2 }
        half = bits / 2
        mask = (UInt64(1) << half) - 1
        keys = (
            EpochShuffle.mix(seed ^ 0), EpochShuffle.mix(seed ^ 1), EpochShuffle.mix(seed ^ 2),
            EpochShuffle.mix(seed ^ 3)
        )
    }

    /// The shard visited at `position` (in `0..<shardCount`).
    public func shard(at position: Int64) -> Int64 {
        guard shuffled else { return position }
        var x = UInt64(position)
        repeat { x = forward(x) } while x >= UInt64(shardCount)
        return Int64(x)
    }

    /// The position at which `shard` (in `0..<shardCount`) is visited.
    public func position(of shard: Int64) -> Int64 {
        guard shuffled else { return shard }
        var x = UInt64(shard)
        repeat { x = backward(x) } while x >= UInt64(shardCount)
        return Int64(x)
    }

    /// Every shard, in the order the epoch visits them.
    public var shards: [Int64] { (0..<shardCount).map(shard(at:)) }

    private func round(_ value: UInt64, _ key: UInt64) -> UInt64 { EpochShuffle.mix(value ^ key) & mask }

    private func forward(_ x: UInt64) -> UInt64 {
        var (left, right) = (x >> half, x & mask)
        (left, right) = (right, left ^ round(right, keys.0))
        (left, right) = (right, left ^ round(right, keys.1))
        (left, right) = (right, left ^ round(right, keys.2))
        (left, right) = (right, left ^ round(right, keys.3))
        return left << half | right
    }

    private func backward(_ x: UInt64) -> UInt64 {
        var (left, right) = (x >> half, x & mask)
        (left, right) = (right ^ round(left, keys.3), left)
        (left, right) = (right ^ round(left, keys.2), left)
        (left, right) = (right ^ round(left, keys.1), left)
        (left, right) = (right ^ round(left, keys.0), left)
        return left << half | right
    }
}

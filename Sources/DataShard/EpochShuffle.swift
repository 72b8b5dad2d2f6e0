/// Deterministic per-epoch orders: which shard comes when, and in which order a shard's samples come.
///
/// Specified bit for bit in docs/SHARDING.md and implemented identically in `python/dtruntime/shuffle.py`; the
/// shared vectors in `testdata/shuffle_vectors.json` hold both sides to it.
///
/// - `mix(x)` is one SplitMix64 step from state `x` (the first output of `SplitMix64(seed: x)`).
/// - The shard order of epoch `e` is an ``EpochOrder``: a keyed Feistel permutation of `0..<shardCount` seeded with
///   `mix(mix(seed ^ shardDomain) ^ e)`, computed per position (a ledger of millions of shards stores no order).
/// - The sample order of shard `k` in epoch `e` is a Fisher–Yates shuffle of the shard's sample indices driven by
///   `SplitMix64(seed: mix(mix(mix(seed ^ sampleDomain) ^ e) ^ k))`.
/// - Fisher–Yates: for `i` from `n-1` down to `1`, `j = next() % (i+1)`, swap elements `i` and `j`.
///
/// A dataset registered without `shuffle` keeps the identity orders.
public enum EpochShuffle {
    /// Domain separation for the shard-order seed: ASCII "dtr.shrd".
    public static let shardDomain: UInt64 = 0x6474_722E_7368_7264
    /// Domain separation for the sample-order seeds: ASCII "dtr.smpl".
    public static let sampleDomain: UInt64 = 0x6474_722E_736D_706C

    /// One SplitMix64 step from state `x`.
    public static func mix(_ x: UInt64) -> UInt64 {
        var generator = SplitMix64(seed: x)
        return generator.next()
    }

    /// The seed of the shard order of `epoch`.
    public static func shardOrderSeed(seed: UInt64, epoch: Int64) -> UInt64 {
        mix(mix(seed ^ shardDomain) ^ UInt64(bitPattern: epoch))
    }

    /// The seed of the sample order of `shard` in `epoch`.
    public static func sampleOrderSeed(seed: UInt64, epoch: Int64, shard: Int64) -> UInt64 {
        mix(mix(mix(seed ^ sampleDomain) ^ UInt64(bitPattern: epoch)) ^ UInt64(bitPattern: shard))
    }

    /// Shuffles `elements` in place with the specified Fisher–Yates.
    public static func shuffle<Element>(_ elements: inout [Element], seed: UInt64) {
        guard elements.count > 1 else { return }
        var generator = SplitMix64(seed: seed)
        for i in stride(from: elements.count - 1, through: 1, by: -1) {
            let j = Int(generator.next() % UInt64(i + 1))
            elements.swapAt(i, j)
        }
    }

    /// The shards of `spec` in the order epoch `epoch` visits them.
    public static func shardOrder(of spec: DatasetSpec, epoch: Int64) -> [Int64] {
        EpochOrder(spec: spec, epoch: epoch).shards
    }

    /// The sample indices of `shard` in the order epoch `epoch` visits them.
    public static func sampleOrder(of spec: DatasetSpec, epoch: Int64, shard: Int64) -> [Int64] {
        var order = Array(spec.sampleRange(ofShard: shard))
        if spec.shuffle { shuffle(&order, seed: sampleOrderSeed(seed: spec.seed, epoch: epoch, shard: shard)) }
        return order
    }
}

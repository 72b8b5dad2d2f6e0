/// One bit per shard: which shards of a ledger are done (a ledger of 2^24 shards spends 2 MiB on it).
struct ShardBitmap: Sendable {
    /// Bit `i % 64` of word `i / 64` is shard `i`'s.
    private(set) var words: [UInt64]

    /// All bits clear, for `count` shards.
    init(count: Int) {
        words = [UInt64](repeating: 0, count: (count + 63) / 64)
    }

    /// The bitmap with these words (``words`` of another one).
    init(words: [UInt64]) {
        self.words = words
    }

    subscript(index: Int) -> Bool {
        get { words[index >> 6] & (1 << UInt64(index & 63)) != 0 }
        set {
            if newValue {
                words[index >> 6] |= 1 << UInt64(index & 63)
            } else {
                words[index >> 6] &= ~(1 << UInt64(index & 63))
            }
        }
    }
}

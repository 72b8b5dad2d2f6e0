/// SplitMix64 (Steele, Lea & Flood 2014; Vigna's reference constants): the small, fast generator that drives every
/// deterministic shuffle in dtruntime. It is specified bit for bit so that the Swift coordinator and the Python SDK
/// derive identical orders from the same seed.
public struct SplitMix64: RandomNumberGenerator, Sendable, Hashable {
    /// The generator's whole state.
    public private(set) var state: UInt64

    /// A generator whose first output is derived from `seed`.
    public init(seed: UInt64) {
        state = seed
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

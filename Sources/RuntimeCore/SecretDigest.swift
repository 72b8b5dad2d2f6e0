/// The digest (SHA-256, computed by the shell: this target does no cryptography) of a worker's secret: what the
/// coordinator keeps and persists instead of the secret itself, so that a copy of its database cannot act as a worker.
///
/// Held inline (32 bytes in four words, no heap allocation: every member keeps one). Any other length (a damaged
/// database row) makes a malformed digest, which matches nothing.
///
/// Compared in constant time: how long a comparison takes says nothing about how much of a guess was right.
public struct SecretDigest: Sendable, Hashable, CustomStringConvertible {
    /// The length of a well-formed digest (SHA-256).
    public static let byteCount = 32

    private let words: (UInt64, UInt64, UInt64, UInt64)
    /// Whether the digest was made of ``byteCount`` bytes.
    public let isWellFormed: Bool

    /// A digest of `bytes`: well formed when there are ``byteCount`` of them.
    public init(_ bytes: [UInt8]) {
        guard bytes.count == Self.byteCount else {
            words = (0, 0, 0, 0)
            isWellFormed = false
            return
        }
        func word(_ index: Int) -> UInt64 {
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[index * 8 + $1]) << UInt64(8 * $1) }
        }
        words = (word(0), word(1), word(2), word(3))
        isWellFormed = true
    }

    /// The digest's bytes (none when malformed).
    public var bytes: [UInt8] {
        guard isWellFormed else { return [] }
        return [words.0, words.1, words.2, words.3].flatMap { word in
            (0..<8).map { UInt8(truncatingIfNeeded: word >> UInt64(8 * $0)) }
        }
    }

    /// Whether `other` is the same well-formed digest, in constant time: what authenticates a call.
    public func matches(_ other: SecretDigest) -> Bool {
        isWellFormed && other.isWellFormed && sameWords(other)
    }

    private func sameWords(_ other: SecretDigest) -> Bool {
        let difference =
            (words.0 ^ other.words.0) | (words.1 ^ other.words.1) | (words.2 ^ other.words.2)
            | (words.3 ^ other.words.3)
        return difference == 0
    }

    /// Never the bytes: a digest printed into a log must not help anyone.
    public var description: String { isWellFormed ? "SecretDigest(32 bytes)" : "SecretDigest(malformed)" }

    /// Equality of values (two malformed digests are equal, as any value equals itself), in constant time whoever
    /// calls `==`. Authentication uses ``matches(_:)``, which no malformed digest passes.
    public static func == (lhs: SecretDigest, rhs: SecretDigest) -> Bool {
        lhs.isWellFormed == rhs.isWellFormed && lhs.sameWords(rhs)
    }

    /// Hashes nothing secret: a hash table of digests must not leak timing either, and nothing keys by them.
    public func hash(into hasher: inout Hasher) { hasher.combine(isWellFormed) }
}

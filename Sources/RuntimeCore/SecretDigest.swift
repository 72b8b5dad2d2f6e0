/// The digest (SHA-256, computed by the shell: this target does no cryptography) of a worker's secret: what the
/// coordinator keeps and persists instead of the secret itself, so that a copy of its database cannot act as a worker.
///
/// Compared in constant time: how long a comparison takes says nothing about how much of a guess was right.
public struct SecretDigest: Sendable, Hashable, CustomStringConvertible {
    /// The digest's bytes.
    public let bytes: [UInt8]

    /// A digest of `bytes` (32 for SHA-256).
    public init(_ bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Whether `other` is the same digest, in time that depends only on the lengths.
    public func matches(_ other: SecretDigest) -> Bool {
        guard bytes.count == other.bytes.count else { return false }
        var difference: UInt8 = 0
        for index in bytes.indices { difference |= bytes[index] ^ other.bytes[index] }
        return difference == 0
    }

    /// Never the bytes: a digest printed into a log must not help anyone.
    public var description: String { "SecretDigest(\(bytes.count) bytes)" }

    /// Equality is ``matches(_:)``: constant time, whoever calls `==`.
    public static func == (lhs: SecretDigest, rhs: SecretDigest) -> Bool { lhs.matches(rhs) }

    /// Hashes the length only: a hash table of digests must not leak timing either, and nothing keys by them.
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes.count) }
}

/// A shared secret that clients present as `Authorization: Bearer <token>`, compared in constant time and never
/// printed (its description is redacted, so it cannot end up in a log line by accident).
public struct BearerToken: Sendable, CustomStringConvertible {
    private let bytes: [UInt8]

    /// A token of at least 16 printable ASCII characters without spaces (anything shorter is too easy to guess).
    public init?(_ value: String) {
        let bytes = Array(value.utf8)
        guard bytes.count >= 16, bytes.count <= 4096, bytes.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            return nil
        }
        self.bytes = bytes
    }

    /// Whether an `Authorization` header value (`Bearer <token>`) carries this token. Takes the same time whatever
    /// prefix of the token matches.
    public func isPresented(in authorization: String?) -> Bool {
        guard let authorization else { return false }
        let prefix = "Bearer "
        guard authorization.hasPrefix(prefix) else { return false }
        let presented = Array(authorization.utf8.dropFirst(prefix.utf8.count))
        var difference = UInt8(truncatingIfNeeded: presented.count ^ bytes.count)
        for index in 0..<bytes.count {
            let other = index < presented.count ? presented[index] : 0
            difference |= bytes[index] ^ other
        }
        return difference == 0
    }

    public var description: String { "<redacted token>" }
}

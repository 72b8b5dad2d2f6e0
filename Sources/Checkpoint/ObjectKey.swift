public import RuntimeCore

/// A storage key relative to a checkpoint store's root (a directory or an S3 prefix), proven safe: it can never name
/// anything outside the root, on a file system or in a bucket.
///
/// Keys are made of `/`-separated segments of `[A-Za-z0-9._-]`, none of them empty, `.` or `..`; so no absolute paths,
/// no traversal, no NUL, no backslashes and no percent-encoding that a later decoder could turn into `..`.
public struct ObjectKey: Sendable, Hashable, CustomStringConvertible {
    /// Longest accepted key in bytes (S3's own limit is 1024).
    public static let maxLength = 512

    /// The key, e.g. `default/step-000001000/rank-00003.part`.
    public let rawValue: String

    /// Validates a key (from a manifest, a request or a listing).
    public init(_ rawValue: String, field: String = "object_key") throws(CoreError) {
        let rule = "must be 1-\(Self.maxLength) bytes of /-separated [A-Za-z0-9._-] segments, none empty, . or .."
        guard (1...Self.maxLength).contains(rawValue.utf8.count) else {
            throw .invalid(field, rule, got: Validation.quoted(rawValue))
        }
        for segment in rawValue.split(separator: "/", omittingEmptySubsequences: false) {
            guard !segment.isEmpty, segment != ".", segment != "..", segment.utf8.allSatisfy(Validation.isNameByte)
            else { throw .invalid(field, rule, got: Validation.quoted(rawValue)) }
        }
        self.rawValue = rawValue
    }

    /// Joins validated segments.
    public init(segments: [String]) throws(CoreError) {
        try self.init(segments.joined(separator: "/"))
    }

    /// The key's segments.
    public var segments: [Substring] { rawValue.split(separator: "/") }

    public var description: String { rawValue }
}

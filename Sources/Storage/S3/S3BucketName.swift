/// S3's naming rules for general-purpose buckets, checked before any request so a typo gets a precise message
/// instead of a bare `InvalidBucketName` (or, worse, a request to the wrong path).
public enum S3BucketName {
    /// Checks `name` and returns it.
    ///
    /// - Throws: `invalidArgument` naming the rule broken.
    @discardableResult
    public static func validate(_ name: String) throws(StorageError) -> String {
        func invalid(_ rule: String) -> StorageError {
            StorageError(.invalidArgument, "S3 bucket name \(name.debugDescription) \(rule)")
        }
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { throw invalid("must be 3-63 characters long") }
        guard bytes.allSatisfy({ isLowercaseAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") })
        else { throw invalid("may contain only lowercase letters, digits, '.' and '-'") }
        guard isLowercaseAlphanumeric(bytes.first!), isLowercaseAlphanumeric(bytes.last!) else {
            throw invalid("must begin and end with a letter or digit")
        }
        guard !name.contains("..") else { throw invalid("must not contain two adjacent periods") }
        guard !looksLikeIPv4(name) else { throw invalid("must not be formatted as an IP address") }
        for reserved in ["xn--", "sthree-", "amzn-s3-demo-"] where name.hasPrefix(reserved) {
            throw invalid("must not start with the reserved prefix \(reserved.debugDescription)")
        }
        for reserved in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] where name.hasSuffix(reserved) {
            throw invalid("must not end with the reserved suffix \(reserved.debugDescription)")
        }
        return name
    }

    private static func isLowercaseAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func looksLikeIPv4(_ name: String) -> Bool {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in !part.isEmpty && part.allSatisfy(\.isNumber) }
    }
}

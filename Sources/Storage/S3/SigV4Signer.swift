import Crypto
public import Foundation

/// AWS Signature Version 4 for header-based authentication, as S3 wants it: pure (the time is a parameter), so it is
/// tested against AWS's published example signatures.
///
/// S3's flavour differs from other services in one way that matters here: the canonical URI is the path URI-encoded
/// once, not twice.
public struct SigV4Signer: Sendable {
    /// The credentials that sign.
    public var credentials: S3Credentials
    /// The signing region, e.g. `us-east-1`.
    public var region: String
    /// The signing service name: `s3`.
    public var service: String

    /// Creates a signer.
    public init(credentials: S3Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The SHA-256 of an empty payload, in hex.
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// A signed request: the headers to send and, for tests and debugging, the intermediate strings.
    public struct Signature: Sendable {
        /// The canonical request that was hashed.
        public var canonicalRequest: String
        /// The string that was signed.
        public var stringToSign: String
        /// The signature, in hex.
        public var signature: String
        /// The `Authorization` header's value.
        public var authorization: String
        /// Every header to send, names lowercased: the caller's, `x-amz-date`, `x-amz-content-sha256`,
        /// `x-amz-security-token` (with a session token) and `authorization`.
        public var headers: [(name: String, value: String)]
    }

    /// Signs a request.
    ///
    /// - Parameters:
    ///   - method: `GET`, `PUT`, ...
    ///   - path: the absolute path, not encoded (e.g. `/bucket/dir/key`); it is encoded here exactly as
    ///     ``encodePath(_:)`` encodes it for the URL.
    ///   - query: the query parameters, not encoded, in any order; a parameter without a value has an empty value.
    ///   - headers: the headers to sign, `host` included, in any case; their values are trimmed.
    ///   - payloadHash: the hex SHA-256 of the body (``hash(_:)``).
    ///   - date: the signing time, sent as `x-amz-date`.
    public func sign(
        method: String, path: String, query: [(String, String)] = [], headers: [(String, String)],
        payloadHash: String, date: Date
    ) -> Signature {
        let timestamp = Self.timestamp(date)
        let day = String(timestamp.prefix(8))
        var all = headers.map { (name: $0.0.lowercased(), value: Self.trimmed($0.1)) }
        all.append((name: "x-amz-date", value: timestamp))
        if !all.contains(where: { $0.name == "x-amz-content-sha256" }) {
            all.append((name: "x-amz-content-sha256", value: payloadHash))
        }
        if let token = credentials.sessionToken, !all.contains(where: { $0.name == "x-amz-security-token" }) {
            all.append((name: "x-amz-security-token", value: token))
        }
        all.sort { $0.name < $1.name }
        let signedHeaders = all.map(\.name).joined(separator: ";")

        let canonicalRequest = [
            method,
            Self.encodePath(path),
            Self.canonicalQuery(query),
            all.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")

        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [
            "AWS4-HMAC-SHA256", timestamp, scope, Self.hash(Array(canonicalRequest.utf8)),
        ].joined(separator: "\n")

        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key))
        }
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        let authorization =
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
        all.append((name: "authorization", value: authorization))
        return Signature(
            canonicalRequest: canonicalRequest, stringToSign: stringToSign, signature: signature,
            authorization: authorization, headers: all)
    }

    // MARK: Encoding

    /// The hex SHA-256 of a payload, for `x-amz-content-sha256`.
    public static func hash(_ bytes: [UInt8]) -> String {
        hex(SHA256.hash(data: bytes))
    }

    /// The path as it is signed and sent: every byte but `/` and RFC 3986's unreserved ones percent-encoded.
    public static func encodePath(_ path: String) -> String {
        encode(path, keepingSlash: true)
    }

    /// The canonical query string: parameters encoded, sorted by name then value, `name=value` joined by `&`.
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { name, value in
            (encode(name, keepingSlash: false), encode(value, keepingSlash: false))
        }
        let sorted = encoded.sorted { lhs, rhs in
            lhs.name == rhs.name ? lhs.value < rhs.value : lhs.name < rhs.name
        }
        return sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
    }

    /// Percent-encodes everything but `A-Z a-z 0-9 - _ . ~` (and `/` when asked), with upper-case hex digits, as
    /// SigV4 requires (stricter than `addingPercentEncoding`'s sets).
    public static func encode(_ value: String, keepingSlash: Bool) -> String {
        var encoded = ""
        encoded.reserveCapacity(value.utf8.count)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: "~"):
                encoded.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepingSlash:
                encoded.append("/")
            default:
                encoded +=
                    "%" + String(byte >> 4, radix: 16, uppercase: true)
                    + String(byte & 0x0F, radix: 16, uppercase: true)
            }
        }
        return encoded
    }

    // MARK: Time

    /// `yyyyMMdd'T'HHmmss'Z'` in UTC, computed from the Unix time so no formatter, locale or time zone is involved.
    public static func timestamp(_ date: Date) -> String {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let (days, secondOfDay) = seconds.quotientAndRemainder(dividingBy: 86_400)
        let (dayNumber, second) = secondOfDay < 0 ? (days - 1, secondOfDay + 86_400) : (days, secondOfDay)
        let (year, month, day) = civilDate(daysSinceEpoch: dayNumber)
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return pad(year, 4) + pad(month, 2) + pad(day, 2) + "T" + pad(second / 3600, 2)
            + pad(second % 3600 / 60, 2) + pad(second % 60, 2) + "Z"
    }

    /// Year, month and day of a day number counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
    private static func civilDate(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let shifted = daysSinceEpoch + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    // MARK: Helpers

    /// A header value as SigV4 canonicalizes it: outer spaces trimmed, inner runs of spaces collapsed to one.
    private static func trimmed(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }

    private static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

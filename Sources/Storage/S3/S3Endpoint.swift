import Foundation

/// The base URL of an S3 API (`http://127.0.0.1:8333`, `https://s3.eu-west-1.amazonaws.com`), to which requests are
/// sent path-style: `<endpoint>/<bucket>/<key>`.
public struct S3Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// `http` or `https`.
    public let scheme: String
    /// The host name or address (IPv6 without brackets).
    public let host: String
    /// The port, when the URL names one.
    public let port: Int?

    /// Parses and checks an endpoint URL: `http(s)://host[:port]`, no path, query, fragment or user info.
    ///
    /// - Throws: `invalidArgument` naming `field` and the rule broken.
    public init(parsing url: String, field: String = "--checkpoint-s3-endpoint") throws(StorageError) {
        let rule = "must be an http:// or https:// URL of the form scheme://host[:port] (got \(url.debugDescription))"
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty,
            components.user == nil, components.password == nil, components.query == nil,
            components.fragment == nil, components.path.isEmpty || components.path == "/"
        else {
            throw StorageError(.invalidArgument, "\(field) \(rule)")
        }
        if let port = components.port, !(1...65_535).contains(port) {
            throw StorageError(.invalidArgument, "\(field) port must be between 1 and 65535 (got \(port))")
        }
        self.scheme = scheme
        // URLComponents keeps the brackets of an IPv6 literal in `host`; store the bare address.
        self.host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        self.port = components.port
    }

    /// AWS's regional endpoint, `https://s3.<region>.amazonaws.com`.
    public static func aws(region: String) -> S3Endpoint {
        // The region was validated as a host label by the caller, so this URL always parses.
        try! S3Endpoint(parsing: "https://s3.\(region).amazonaws.com")
    }

    /// The `Host` header: the host, bracketed when IPv6, with the port unless it is the scheme's default.
    public var authority: String {
        let name = host.contains(":") ? "[\(host)]" : host
        guard let port, port != (scheme == "https" ? 443 : 80) else { return name }
        return "\(name):\(port)"
    }

    /// `scheme://authority`, e.g. `http://127.0.0.1:8333`.
    public var url: String { "\(scheme)://\(authority)" }

    /// The URL.
    public var description: String { url }
}

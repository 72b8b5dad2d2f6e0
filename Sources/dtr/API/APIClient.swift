import AsyncHTTPClient
import Coordinator
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import RuntimeCore

/// One answer of the API: its status and body, raw (what `--json` prints) and decoded.
struct APIResponse: Sendable {
    var status: Int
    var body: Data
    var json: JSON

    /// The body as text, ending in a newline: what `--json` prints.
    var text: String {
        let text = String(decoding: body, as: UTF8.self)
        return text.hasSuffix("\n") ? text : text + "\n"
    }
}

/// A client of the coordinator's HTTP API (docs/API.md) for the `dtr` commands: GET and POST of JSON with the admin
/// token, errors turned into ``APIFailure``s that say what to do.
///
/// async-http-client rather than URLSession: URLSession on Linux (FoundationNetworking, over libcurl) has no public way
/// to trust a private CA file for one client (`--ca-file`), and async-http-client is already built for the S3 client.
struct APIClient: Sendable {
    /// Where and how.
    let settings: APISettings
    private let http: HTTPClient

    /// The largest answer read; `/api/logs` at its limit of 10,000 entries stays well below.
    private static let maxBodyBytes = 64 << 20

    /// Runs `body` with a client for `settings`, then shuts the client down (also when `body` throws or is
    /// cancelled).
    static func with<Result: Sendable>(
        _ settings: APISettings, _ body: (APIClient) async throws -> Result
    ) async throws -> Result {
        let client = try APIClient(settings)
        do {
            let result = try await body(client)
            try? await client.http.shutdown()
            return result
        } catch {
            try? await client.http.shutdown()
            throw error
        }
    }

    private init(_ settings: APISettings) throws {
        self.settings = settings
        var configuration = HTTPClient.Configuration()
        // A redirect would carry the admin token elsewhere: the coordinator never sends one.
        configuration.redirectConfiguration = .disallow
        configuration.httpVersion = .http1Only
        // Fail at once when nothing listens, rather than retrying until the timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: Self.timeAmount(settings.timeout))
        if settings.baseURL.hasPrefix("https://") {
            var tls = TLSConfiguration.makeClientConfiguration()
            if let caFile = settings.caFile {
                guard FileManager.default.isReadableFile(atPath: caFile) else {
                    throw APIFailure("cannot read the CA file \(caFile) (--ca-file or DTR_CA_FILE): check the path")
                }
                tls.trustRoots = .file(caFile)
            }
            configuration.tlsConfiguration = tls
        }
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    // MARK: Requests

    /// GETs `path` (e.g. `/api/workers`) with `query` parameters; throws ``APIFailure`` unless the answer is a 2xx.
    func get(_ path: String, query: [(name: String, value: String)] = []) async throws -> APIResponse {
        try await send(.GET, path, query: query, body: nil)
    }

    /// POSTs `body` as JSON to `path`; throws ``APIFailure`` unless the answer is a 2xx.
    func post(_ path: String, body: JSON) async throws -> APIResponse {
        try await send(.POST, path, query: [], body: Data(body.compactText.utf8))
    }

    private func send(
        _ method: HTTPMethod, _ path: String, query: [(name: String, value: String)], body: Data?
    ) async throws -> APIResponse {
        var url = settings.baseURL + path
        if !query.isEmpty {
            url += "?" + query.map { "\(Self.escape($0.name))=\(Self.escape($0.value))" }.joined(separator: "&")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "dtr/\(DTRuntimeVersion.current)")
        if let token = settings.token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let described = "\(method.rawValue) \(path)"
        let status: Int
        let bytes: ByteBuffer
        do {
            let response = try await http.execute(request, timeout: Self.timeAmount(settings.timeout))
            status = Int(response.status.code)
            bytes = try await response.body.collect(upTo: Self.maxBodyBytes)
        } catch {
            if Task.isCancelled { throw CancellationError() }
            throw transportFailure(error, request: described)
        }
        let data = Data(bytes.readableBytesView)
        let json = try? JSON(data: data)
        guard (200..<300).contains(status) else {
            throw APIFailure.answer(status: status, body: json ?? .null, settings: settings, request: described)
        }
        guard let json else {
            throw APIFailure(
                "\(described) at \(settings.baseURL) answered HTTP \(status) with a body that is not JSON: is this "
                    + "the coordinator's HTTP API (dtr serve --http-port, 51051 by default)?")
        }
        return APIResponse(status: status, body: data, json: json)
    }

    // MARK: Failures

    /// What a failure to get an answer means, and what to do.
    private func transportFailure(_ error: any Error, request: String) -> APIFailure {
        let base = settings.baseURL
        let timeout = settings.timeout
        if let failure = error as? HTTPClientError {
            switch failure {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout:
                return APIFailure(
                    "no answer from the dtr API at \(base) within \(Humanize.duration(seconds: timeout.seconds)) "
                        + "(\(request)): is `dtr serve` running and responsive? pass --api or set DTR_API; raise "
                        + "--timeout for a slow link",
                    kind: .transport)
            case .remoteConnectionClosed where base.hasPrefix("http://"):
                return APIFailure(
                    "the dtr API at \(base) closed the connection (\(request)): if the coordinator serves TLS "
                        + "(dtr serve --tls-cert), use an https:// address in --api or DTR_API; if \(base) is its "
                        + "gRPC port, use the HTTP port (51051 by default)",
                    kind: .transport)
            default: break
            }
        }
        if error is NIOSSLError || error is BoringSSLError {
            return APIFailure(
                "TLS with the dtr API at \(base) failed (\(error)): pass the CA that signed the coordinator's "
                    + "certificate with --ca-file or DTR_CA_FILE",
                kind: .transport)
        }
        return APIFailure(
            "cannot reach the dtr API at \(base) (\(Self.summary(of: error))): is `dtr serve` running? pass --api "
                + "or set DTR_API",
            kind: .transport)
    }

    /// A short description of a connection error: NIO's name the addresses tried and their errno.
    private static func summary(of error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("connection refused") || text.contains("Connection refused") { return "connection refused" }
        return text
    }

    private static func timeAmount(_ duration: Duration) -> TimeAmount {
        let (seconds, attoseconds) = duration.components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }

    /// Percent-encodes a query name or value (RFC 3986 unreserved characters stay).
    private static func escape(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    private static let unreserved = CharacterSet(
        charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    /// Percent-encodes one path segment (a task id a user typed may hold `/` or spaces; the API then says it is bad).
    static func pathSegment(_ text: String) -> String {
        escape(text)
    }
}

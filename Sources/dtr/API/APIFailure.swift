/// Why a command could not get its answer from the API; `dtr` prints it as `Error: <message>` on standard error and
/// exits with status 1.
struct APIFailure: Error, CustomStringConvertible {
    /// What kind of failure: transport failures may pass (a follower retries them), the API's answers do not.
    enum Kind: Sendable, Equatable {
        /// Not an answer of the API: unreachable, timed out, TLS, a broken connection.
        case transport
        /// The API answered this HTTP status with an error.
        case status(Int)
        /// Anything else: a local file, an answer the CLI cannot read.
        case other
    }

    /// The message: what happened and what to do.
    var message: String
    var kind: Kind

    init(_ message: String, kind: Kind = .other) {
        self.message = message
        self.kind = kind
    }

    var description: String { message }

    /// Whether trying again later may succeed: no answer, or the API said it is shutting down (503) or rate-limited
    /// (429).
    var isTransient: Bool {
        switch kind {
        case .transport, .status(429), .status(503): true
        case .status, .other: false
        }
    }

    /// The failure for an error answer: the API's `{"error": {"code", "message"}}` and what to do about a 401.
    static func answer(status: Int, body: JSON, settings: APISettings, request: String) -> APIFailure {
        let code = body["error"]["code"].string
        let serverMessage = body["error"]["message"].string
        let detail = "HTTP \(status)" + (code.map { " \($0)" } ?? "")
        if status == 401 {
            let said = serverMessage.map { ": \($0)" } ?? ""
            guard let source = settings.tokenSource else {
                return APIFailure(
                    "the coordinator requires the admin token (\(detail)\(said)); set DTR_ADMIN_TOKEN to the token "
                        + "`dtr serve` was started with (--admin-token), or pass --token-file PATH",
                    kind: .status(status))
            }
            return APIFailure(
                "the coordinator refused the admin token from \(source) (\(detail)\(said)); set DTR_ADMIN_TOKEN to "
                    + "the token `dtr serve` was started with (--admin-token)",
                kind: .status(status))
        }
        if let serverMessage {
            return APIFailure("\(serverMessage) (\(detail))", kind: .status(status))
        }
        return APIFailure(
            "\(request) answered \(detail) without a dtr error body: is \(settings.baseURL) the coordinator's HTTP "
                + "API (dtr serve --http-port, 51051 by default)?",
            kind: .status(status))
    }
}

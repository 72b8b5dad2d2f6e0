import ArgumentParser
import Foundation

/// Where the coordinator's HTTP API is and how to reach it: the options every client command shares.
struct APIOptions: ParsableArguments {
    @Option(
        help: """
            The coordinator's HTTP API: http://HOST:PORT, https://HOST:PORT, or HOST:PORT for http [env: DTR_API] \
            (default: http://127.0.0.1:51051).
            """)
    var api: String?

    @Option(
        help: """
            A file holding the admin token of a coordinator started with --admin-token; without it the token comes \
            from DTR_ADMIN_TOKEN (never from a flag: it would show in ps).
            """)
    var tokenFile: String?

    @Option(help: "PEM CA certificate that signed an https coordinator's certificate [env: DTR_CA_FILE].")
    var caFile: String?

    @Option(help: "How long to wait for each answer, e.g. 500ms, 5s, 1m (default: 10s).")
    var timeout: String?

    @Flag(help: "Print the API's JSON (one document) instead of a table, for scripts.")
    var json = false

    /// The default address: `dtr serve`'s on this machine.
    static let defaultAPI = "http://127.0.0.1:51051"

    /// Checks what can be checked before any request, so that a typo gets this command's usage.
    mutating func validate() throws {
        let environment = ProcessInfo.processInfo.environment
        _ = try Self.baseURL(api, environment: environment)
        _ = try requestTimeout()
    }

    /// The settings for this command's requests; reads the token file or `DTR_ADMIN_TOKEN`.
    func settings(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> APISettings {
        let token: String?
        let tokenSource: String?
        if let tokenFile {
            let text: String
            do {
                text = try String(contentsOfFile: tokenFile, encoding: .utf8)
            } catch {
                throw APIFailure(
                    "cannot read the admin token from --token-file \(tokenFile): \(error.localizedDescription)")
            }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else {
                throw APIFailure("--token-file \(tokenFile) is empty: write the admin token in it")
            }
            (token, tokenSource) = (trimmed, "--token-file \(tokenFile)")
        } else if let value = environment["DTR_ADMIN_TOKEN"], !value.isEmpty {
            (token, tokenSource) = (value, "DTR_ADMIN_TOKEN")
        } else {
            (token, tokenSource) = (nil, nil)
        }
        return APISettings(
            baseURL: try Self.baseURL(api, environment: environment), token: token, tokenSource: tokenSource,
            caFile: caFile ?? environment["DTR_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 },
            timeout: try requestTimeout())
    }

    /// `--api`, else `DTR_API`, else the default, as a URL without a trailing slash.
    static func baseURL(_ flagValue: String?, environment: [String: String]) throws -> String {
        let text: String
        let source: String
        if let flagValue {
            (text, source) = (flagValue, "--api")
        } else if let env = environment["DTR_API"], !env.isEmpty {
            (text, source) = (env, "DTR_API")
        } else {
            (text, source) = (defaultAPI, "the default")
        }
        var url = text.trimmingCharacters(in: .whitespaces)
        if !url.contains("://") { url = "http://" + url }
        while url.hasSuffix("/") { url.removeLast() }
        guard let components = URLComponents(string: url), ["http", "https"].contains(components.scheme ?? ""),
            let host = components.host, !host.isEmpty, components.query == nil, components.fragment == nil
        else {
            throw ValidationError(
                "\(source) must be the coordinator's HTTP address, such as http://127.0.0.1:51051 (got \"\(text)\")")
        }
        return url
    }

    private func requestTimeout() throws -> Duration {
        guard let timeout else { return .seconds(10) }
        guard let duration = DurationArgument.parse(timeout) else {
            throw ValidationError("--timeout must be a duration such as 500ms, 5s or 1m (got \"\(timeout)\")")
        }
        return duration
    }
}

/// Everything a request needs: where, with which token, trusting which CA, waiting how long.
struct APISettings: Sendable {
    /// `http(s)://host:port`, maybe with a path prefix, without a trailing slash.
    var baseURL: String
    /// The admin token, if any.
    var token: String?
    /// Where the token came from (`DTR_ADMIN_TOKEN` or `--token-file PATH`), for error messages.
    var tokenSource: String?
    /// A PEM CA file to verify an https coordinator with; the system's roots otherwise.
    var caFile: String?
    /// How long each request may take.
    var timeout: Duration
}

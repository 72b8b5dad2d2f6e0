public import Hummingbird

/// Cross-origin access to the HTTP API for browsers: by default none (same-origin only: the dashboard is served by the
/// coordinator itself); `--cors-origins` lists the origins whose pages may call the API.
public struct CORSPolicy: Sendable {
    /// Origins allowed (`scheme://host[:port]`), exactly as browsers send them.
    public let origins: Set<String>

    /// A policy for these origins.
    public init(origins: Set<String>) {
        self.origins = origins
    }

    /// Validates an `--cors-origins` entry: `http(s)://host[:port]`, no path.
    public static func isValidOrigin(_ origin: String) -> Bool {
        guard let schemeEnd = origin.range(of: "://") else { return false }
        let scheme = origin[..<schemeEnd.lowerBound]
        let rest = origin[schemeEnd.upperBound...]
        return (scheme == "http" || scheme == "https") && !rest.isEmpty
            && !rest.contains(where: { $0 == "/" || $0 == " " || $0 == "?" || $0 == "#" })
    }
}

/// Answers CORS preflights and adds `Access-Control-Allow-Origin` for allowed origins (errors included); requests
/// from other origins get no CORS headers, so browsers keep them from reading the answer.
public struct CORSMiddleware<Context: RequestContext>: RouterMiddleware {
    let policy: CORSPolicy

    /// A middleware for `policy`.
    public init(policy: CORSPolicy) {
        self.policy = policy
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard let origin = request.headers[.origin] else { return try await next(request, context) }
        let allowed = policy.origins.contains(origin)
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            var headers: HTTPFields = [.vary: "Origin"]
            if allowed {
                headers[.accessControlAllowOrigin] = origin
                headers[.accessControlAllowMethods] = "GET, POST, DELETE, OPTIONS"
                headers[.accessControlAllowHeaders] = "Authorization, Content-Type"
                headers[.accessControlMaxAge] = "600"
            }
            return Response(status: allowed ? .noContent : .forbidden, headers: headers)
        }
        var response = try await next(request, context)
        response.headers[.vary] = "Origin"
        if allowed { response.headers[.accessControlAllowOrigin] = origin }
        return response
    }
}

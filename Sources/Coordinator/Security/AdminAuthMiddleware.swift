public import Hummingbird
import RuntimeCore

/// Requires the admin token (`Authorization: Bearer <token>`) on every HTTP request but `GET /api/health` (liveness
/// probes carry no secrets), `GET /api/events` (it checks a ticket instead: EventSource cannot send the token) and
/// `GET` of the dashboard's files (they hold no data: the page asks for the token). Preflight `OPTIONS` requests
/// pass: browsers send them without credentials.
public struct AdminAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: BearerToken

    /// A middleware for `token`.
    public init(token: BearerToken) {
        self.token = token
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        if request.method == .options || (request.method == .get && Self.isPublic(request.uri.path)) {
            return try await next(request, context)
        }
        let presented = request.headers[.authorization]
        guard token.isPresented(in: presented) else {
            throw presented == nil
                ? CoreError(
                    .unauthenticated,
                    "this coordinator requires the admin token: send Authorization: Bearer <DTR_ADMIN_TOKEN>",
                    reason: .tokenMissing)
                : CoreError(
                    .unauthenticated, "the admin token is wrong: send Authorization: Bearer <DTR_ADMIN_TOKEN>",
                    reason: .tokenWrong)
        }
        return try await next(request, context)
    }

    /// Whether a GET of `path` needs no token: the health probe, the event stream, and anything outside `/api` and
    /// `/metrics` (the dashboard's files, or a 404). Judged on the path's components, as the router matches them
    /// (it skips empty ones: `//api//workers` is `/api/workers`).
    static func isPublic(_ path: String) -> Bool {
        let components = path.split(separator: "/")
        if components == ["api", "health"] || components == ["api", "events"] { return true }
        return components.first != "api" && components.first != "metrics"
    }
}

public import Hummingbird
import RuntimeCore

/// Requires the admin token (`Authorization: Bearer <token>`) on every HTTP request but `GET /api/health` (liveness
/// probes carry no secrets). Preflight `OPTIONS` requests pass: browsers send them without credentials.
public struct AdminAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: BearerToken

    /// A middleware for `token`.
    public init(token: BearerToken) {
        self.token = token
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        if request.method == .options || (request.method == .get && request.uri.path == "/api/health") {
            return try await next(request, context)
        }
        let presented = request.headers[.authorization]
        guard token.isPresented(in: presented) else {
            throw CoreError(
                .unauthenticated,
                presented == nil
                    ? "this coordinator requires the admin token: send Authorization: Bearer <DTR_ADMIN_TOKEN>"
                    : "the admin token is wrong: send Authorization: Bearer <DTR_ADMIN_TOKEN>")
        }
        return try await next(request, context)
    }
}

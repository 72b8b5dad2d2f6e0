public import Hummingbird

/// Refuses a client (by IP address) that exceeds its rate: `429 Too Many Requests` with `Retry-After` and the JSON
/// error every error gets (``JSONErrorMiddleware`` encodes it; reason `RATE_LIMITED`).
public struct HTTPRateLimitMiddleware: RouterMiddleware {
    public typealias Context = APIRequestContext
    let limits: ClientRateLimits
    let metrics: CoordinatorMetrics?

    /// A middleware enforcing `limits`, counting refusals in `metrics`.
    public init(limits: ClientRateLimits, metrics: CoordinatorMetrics? = nil) {
        self.limits = limits
        self.metrics = metrics
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let client = context.remoteIP ?? "unknown"
        guard var refusal = limits.admit(client, unit: "requests", flag: "--http-rate-limit") else {
            return try await next(request, context)
        }
        metrics?.recordRateLimited(http: true)
        // HTTP says how long to wait in whole seconds (Retry-After), so the message does too.
        let seconds = max(
            1, Int(ClientRateLimits.roundedUp(refusal.details.retryAfter ?? .zero, to: .seconds(1)) / .seconds(1)))
        refusal.message =
            "rate limit: more than \(Int(limits.rate)) requests per second from \(client); retry in \(seconds) s "
            + "(the coordinator's --http-rate-limit)"
        refusal.details.retryAfter = .seconds(seconds)
        throw refusal
    }
}

import Foundation
public import Hummingbird

/// Answers `429 Too Many Requests` with `Retry-After` to a client (by IP address) that exceeds its rate.
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
        guard let wait = limits.admit(client) else { return try await next(request, context) }
        metrics?.recordRateLimited(http: true)
        let seconds = max(1, Int(wait.seconds.rounded(.up)))
        let message =
            "rate limit: more than \(Int(limits.rate)) requests per second from \(client); retry in \(seconds) s "
            + "(the coordinator's --http-rate-limit)"
        let body = try JSONEncoder().encode(ErrorBody(error: .init(code: "resource_exhausted", message: message)))
        return Response(
            status: .tooManyRequests, headers: [.retryAfter: "\(seconds)", .contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

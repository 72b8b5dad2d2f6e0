public import GRPCCore

/// Answers `RESOURCE_EXHAUSTED` (reason `RATE_LIMITED`, with `retry-after-ms`) to a client (by IP address) that calls
/// faster than its rate. Heartbeats and session opens draw from a budget of their own, so a client flooding other calls
/// cannot get its workers declared dead.
public struct GRPCRateLimitInterceptor: ServerInterceptor {
    let calls: ClientRateLimits
    let heartbeats: ClientRateLimits
    let metrics: CoordinatorMetrics?

    /// An interceptor with the same rate for calls and, separately, for heartbeats, on the monotonic clock `now`,
    /// counting refusals in `metrics`.
    public init(rate: Double, metrics: CoordinatorMetrics? = nil, now: @escaping @Sendable () -> Duration) {
        calls = ClientRateLimits(rate: rate, now: now)
        heartbeats = ClientRateLimits(rate: rate, now: now)
        self.metrics = metrics
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let client = Self.address(of: context.remotePeer)
        let method = context.descriptor.method
        let budget = method == "Heartbeat" || method == "WorkerSession" ? heartbeats : calls
        if let refusal = budget.admit(client, unit: "calls", flag: "--grpc-rate-limit") {
            metrics?.recordRateLimited(http: false)
            throw refusal
        }
        return try await next(request, context)
    }

    /// The IP address in a peer description such as `ipv4:127.0.0.1:53412` or `ipv6:[::1]:53412`.
    static func address(of peer: String) -> String {
        let parts = peer.split(separator: ":", maxSplits: 1)
        guard parts.count == 2 else { return peer }
        let rest = parts[1]
        if rest.hasPrefix("["), let end = rest.firstIndex(of: "]") {
            return String(rest[rest.index(after: rest.startIndex)..<end])
        }
        return String(rest.split(separator: ":").first ?? rest)
    }
}

public import GRPCCore

/// Ends every call that fails with a status carrying a reason (``RPCError/init(mapping:)``), and records each unary
/// call's duration and outcome in the metrics, so that handlers only decode, call the engine and encode.
///
/// Normal protocol outcomes are not errors in the metrics: a failure whose reason is in ``expectedOutcomes`` (a shard
/// report for a shard that moved: the SDK skips it) counts as an answered call, not under
/// `dtr_rpc_errors_total`. Streams are not timed here (their duration is their lifetime, not a latency): each call on a
/// BarrierStream is recorded by its outbox.
public struct RPCCallInterceptor: ServerInterceptor {
    /// Methods whose calls are streams.
    static let streams: Set<String> = ["WorkerSession", "BarrierStream"]
    /// Reasons that are answers of the protocol, not failures: alerting on errors must not see them.
    static let expectedOutcomes: Set<String> = ["SHARD_MOVED"]

    let metrics: CoordinatorMetrics
    let now: @Sendable () -> Duration

    /// Records into `metrics`, timing calls on `now` (monotonic).
    public init(metrics: CoordinatorMetrics, now: @escaping @Sendable () -> Duration) {
        self.metrics = metrics
        self.now = now
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let method = context.descriptor.method
        let timed = !Self.streams.contains(method)
        let started = now()
        let response: StreamingServerResponse<Output>
        do {
            response = try await next(request, context)
        } catch {
            response = StreamingServerResponse(error: RPCError(mapping: error))
        }
        switch response.accepted {
        case .failure(let error):
            let status = RPCError(mapping: error)
            if timed { record(method, since: started, status) }
            return StreamingServerResponse(error: status)
        case .success(var contents):
            // A unary handler has answered by now; its message is written (and a stream runs) in the producer.
            let producer = contents.producer
            contents.producer = { [self] writer in
                do {
                    let trailers = try await producer(writer)
                    if timed { record(method, since: started, nil) }
                    return trailers
                } catch {
                    let status = RPCError(mapping: error)
                    if timed { record(method, since: started, status) }
                    throw status
                }
            }
            return StreamingServerResponse(accepted: .success(contents))
        }
    }

    private func record(_ method: String, since started: Duration, _ status: RPCError?) {
        let failed = status.flatMap { $0.reason.map(Self.expectedOutcomes.contains) == true ? nil : $0 }
        metrics.recordRPC(method, duration: now() - started, error: failed?.code.snakeCaseName)
    }
}

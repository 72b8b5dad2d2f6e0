public import GRPCCore

/// Makes a call's `dtr-worker-secret` metadata available to the handlers as ``WorkerSecret/presented``, for the
/// whole call: the handler of a unary call runs inside `next`, a streaming handler inside its response's producer, so
/// both are wrapped. It refuses nothing itself: only a handler knows which worker a call names (it decodes the message
/// first), and ``CoordinatorEngine/authenticate(_:secret:)`` is the one check.
public struct WorkerSecretInterceptor: ServerInterceptor {
    /// The interceptor.
    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let secret = request.metadata[stringValues: WorkerSecret.metadataKey].first(where: { _ in true })
        var response = try await WorkerSecret.$presented.withValue(secret) { try await next(request, context) }
        if case .success(var contents) = response.accepted {
            let producer = contents.producer
            contents.producer = { writer in
                try await WorkerSecret.$presented.withValue(secret) { try await producer(writer) }
            }
            response.accepted = .success(contents)
        }
        return response
    }
}

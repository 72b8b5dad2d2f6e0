public import GRPCCore
import RuntimeCore

/// Refuses every RPC that does not carry the worker token in its `authorization` metadata (`Bearer <token>`):
/// UNAUTHENTICATED with reason `TOKEN_MISSING` or `TOKEN_WRONG`.
public struct WorkerAuthInterceptor: ServerInterceptor {
    let token: BearerToken

    /// An interceptor for `token`.
    public init(token: BearerToken) {
        self.token = token
    }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let presented = request.metadata[stringValues: "authorization"].first(where: { _ in true })
        guard token.isPresented(in: presented) else {
            throw presented == nil
                ? CoreError(
                    .unauthenticated,
                    "this coordinator requires a worker token: set DTR_WORKER_TOKEN for the worker (the SDK sends it)",
                    reason: .tokenMissing)
                : CoreError(
                    .unauthenticated,
                    "the worker token is wrong: set DTR_WORKER_TOKEN to the coordinator's --worker-token",
                    reason: .tokenWrong)
        }
        return try await next(request, context)
    }
}

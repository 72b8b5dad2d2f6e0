public import GRPCCore
import RuntimeProto
import SwiftProtobuf

/// Checks every request message, nested messages included, for known fields sent with the wrong wire type
/// (``WireTypeCheck``), before a handler sees it: the call ends with INVALID_ARGUMENT naming the field. The calls inside
/// a BarrierStream message are the exception: each is checked by the handler and answered in-band, ending only itself.
public struct WireTypeCheckInterceptor: ServerInterceptor {
    /// The interceptor.
    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        var checked = request
        checked.messages = RPCAsyncSequence(
            wrapping: request.messages.map { @Sendable message in
                if let message = message as? Dtruntime_V1_BarrierStreamRequest {
                    try WireTypeCheck.check(message)
                } else if let message = message as? any SwiftProtobuf.Message {
                    try WireTypeCheck.checkAll(message)
                }
                return message
            })
        return try await next(checked, context)
    }
}

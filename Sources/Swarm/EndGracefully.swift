/// Waits for `tasks` to end by themselves (streams whose requests were finished end with the server's status); those
/// still running after `grace` are cancelled, then waited for. Cancelling the caller cancels them at once.
///
/// Streams are ended this way rather than by cancelling them all at once: a cancelled stream is reset (`RST_STREAM`),
/// and swift-nio-http2 remembers only the last 32 streams a connection reset. Frames the server had already sent on
/// older ones then arrive for streams the client no longer knows: a connection error (`NoSuchStream`), on which
/// grpc-swift closes the connection with every other call on it (`UNAVAILABLE`, including calls the server had
/// already carried out).
public func endGracefully<Success: Sendable>(_ tasks: [Task<Success, Never>], grace: Duration = .seconds(10)) async {
    let deadline = Task {
        try? await Task.sleep(for: grace)
        if !Task.isCancelled { for task in tasks { task.cancel() } }
    }
    await withTaskCancellationHandler {
        for task in tasks { _ = await task.value }
    } onCancel: {
        for task in tasks { task.cancel() }
    }
    deadline.cancel()
}

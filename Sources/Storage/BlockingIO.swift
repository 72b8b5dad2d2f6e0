import NIOPosix

/// Runs blocking file-system work on NIO's shared thread pool, so that an `fsync` never stalls a thread of Swift's
/// cooperative pool (which the coordinator's actors and RPC handlers share).
enum BlockingIO {
    /// Runs `body` on the pool and returns its result or rethrows its error.
    static func run<Value: Sendable>(
        _ body: @escaping @Sendable () throws(StorageError) -> Value
    ) async throws(StorageError) -> Value {
        let result: Result<Value, StorageError>
        do {
            result = try await NIOThreadPool.singleton.runIfActive { Result(catching: body) }
        } catch is CancellationError {
            throw StorageError(.unavailable, "file operation cancelled before it started")
        } catch {
            throw StorageError(.unavailable, "cannot run file operation: \(error)")
        }
        return try result.get()
    }
}

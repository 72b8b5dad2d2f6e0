import Dispatch

/// Runs long, blocking computations (building or loading a big dataset's ledger) on a thread of their own, outside
/// Swift's concurrency pool.
///
/// The pool has one thread per core (two on the machines we measure on) and never adds threads for work that blocks
/// one: a build that computes for seconds on a pool thread takes half of the coordinator away, and when the engine's
/// actor was waiting to run on it, every heartbeat acknowledgement waited for the build (measured: other tasks'
/// acknowledgements stalled for the whole 2.8 s of a 2^24-shard build). A private serial queue runs on an
/// overcommitting thread that the system adds for it, as the database's writer does.
enum OffPool {
    /// `work`'s result, computed on a thread outside the concurrency pool; the caller suspends meanwhile.
    static func run<Result: Sendable>(
        _ label: String, _ work: @escaping @Sendable () throws -> Result
    ) async throws -> Result {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue(label: "dtruntime.\(label)").async {
                continuation.resume(with: Swift.Result { try work() })
            }
        }
    }

    /// `work`'s result, computed on a thread outside the concurrency pool.
    static func run<Result: Sendable>(_ label: String, _ work: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { continuation in
            DispatchQueue(label: "dtruntime.\(label)").async { continuation.resume(returning: work()) }
        }
    }
}

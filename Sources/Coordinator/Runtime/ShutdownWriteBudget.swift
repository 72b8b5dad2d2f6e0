public import ServiceLifecycle
import Storage

/// Bounds how long a graceful shutdown writes: the last service of the group, so the first to hear of the shutdown,
/// it gives the write-behind queue ``budget`` to write what is pending (see ``WriteBehindQueue/limitWrites(to:)``).
/// Calls that wait for a change the queue then drops are answered UNAVAILABLE (retry against the restarted
/// coordinator), so a SIGTERM during a long backlog (a big dataset's ledger being written) ends within the budget
/// instead of holding the servers' drain until the backlog is written.
public struct ShutdownWriteBudget: Service {
    /// How long the queue may keep writing once the shutdown begins.
    public static let budget: Duration = .seconds(3)

    let queue: WriteBehindQueue

    public func run() async {
        try? await gracefulShutdown()
        queue.limitWrites(to: Self.budget)
    }
}

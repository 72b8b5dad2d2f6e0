import RuntimeCore
import Synchronization

/// Write-behind queue with group commit: the engine enqueues durable changes synchronously (in the order it makes
/// them) and carries on; one flusher writes everything pending in one transaction, then wakes whoever waits for
/// those changes to be durable. Under load, many registrations share one fsync.
///
/// If a batch fails, its waiters get the error, and the batch stays at the head of the queue and is retried with
/// backoff, so the disk catches up with memory once the fault clears.
public final class WriteBehindQueue: Sendable {
    /// Identifies one enqueued change; tickets grow in enqueue order.
    public typealias Ticket = UInt64

    private struct Waiter {
        var ticket: Ticket
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var pending: [(ticket: Ticket, change: StateChange)] = []
        var nextTicket: Ticket = 1
        /// Every ticket up to this one is committed.
        var durableThrough: Ticket = 0
        /// The latest batch failed: tickets up to `through` wait for a retry that may fail again.
        var failure: (through: Ticket, error: StorageError)?
        var waiters: [Waiter] = []
        var flusherWakeup: CheckedContinuation<Void, Never>?
        var finishing = false
        var stopped = false
    }

    private let state = Mutex(State())
    private let commit: @Sendable ([StateChange]) async throws(StorageError) -> Void

    /// Creates a queue that writes batches with `commit` (usually ``SQLiteStateStore/commit(_:)``).
    public init(commit: @escaping @Sendable ([StateChange]) async throws(StorageError) -> Void) {
        self.commit = commit
    }

    // MARK: Producer side

    /// Enqueues a change and returns its ticket. Never blocks.
    public func enqueue(_ change: StateChange) -> Ticket {
        let (ticket, wakeup) = state.withLock { state in
            let ticket = state.nextTicket
            state.nextTicket += 1
            state.pending.append((ticket, change))
            let wakeup = state.flusherWakeup
            state.flusherWakeup = nil
            return (ticket, wakeup)
        }
        wakeup?.resume()
        return ticket
    }

    /// The ticket of the latest enqueued change (0 before the first one): waiting for it waits for everything so far.
    public var lastTicket: Ticket { state.withLock { $0.nextTicket - 1 } }

    /// Returns once the change with `ticket` (and every earlier one) is committed.
    ///
    /// - Throws: the batch's ``StorageError`` if writing it failed (at once, if it already failed and awaits a
    ///   retry), or `unavailable` if the queue stopped first.
    public func waitUntilDurable(_ ticket: Ticket) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome: Result<Void, StorageError>? = state.withLock { state in
                if ticket <= state.durableThrough { return .success(()) }
                if let failure = state.failure, ticket <= failure.through { return .failure(failure.error) }
                if state.stopped { return .failure(Self.stoppedError) }
                state.waiters.append(Waiter(ticket: ticket, continuation: continuation))
                return nil
            }
            if let outcome { continuation.resume(with: outcome.mapError { $0 as any Error }) }
        }
    }

    // MARK: Flusher

    /// Whether the change with `ticket` (and every earlier one) is committed.
    public func isDurable(_ ticket: Ticket) -> Bool {
        state.withLock { ticket <= $0.durableThrough }
    }

    /// Runs the flusher until ``finish()`` is called (or the task is cancelled) and everything pending is written.
    public func run() async {
        await withTaskCancellationHandler {
            await flush()
        } onCancel: {
            finish()
        }
    }

    private func flush() async {
        var backoff = Duration.milliseconds(50)
        while let batch = await nextBatch() {
            do {
                try await commit(batch.map(\.change))
                resolve(through: batch[batch.count - 1].ticket, with: nil)
                backoff = .milliseconds(50)
            } catch {
                resolve(through: batch[batch.count - 1].ticket, with: error)
                let giveUp = state.withLock { state in
                    state.pending.insert(contentsOf: batch, at: 0)
                    return state.finishing
                }
                if giveUp { break }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
        let (waiters, wakeup) = state.withLock { state in
            state.stopped = true
            defer { state.waiters = [] }
            return (state.waiters, state.flusherWakeup)
        }
        wakeup?.resume()
        for waiter in waiters { waiter.continuation.resume(throwing: Self.stoppedError) }
    }

    /// Asks the flusher to write what is pending and stop.
    public func finish() {
        let wakeup = state.withLock { state in
            state.finishing = true
            defer { state.flusherWakeup = nil }
            return state.flusherWakeup
        }
        wakeup?.resume()
    }

    /// Number of changes not yet committed (for metrics and tests).
    public var backlog: Int { state.withLock { $0.pending.count } }

    private static let stoppedError = StorageError(
        .unavailable, "the coordinator is shutting down and did not persist this change: retry against the new one")

    private func nextBatch() async -> [(ticket: Ticket, change: StateChange)]? {
        while true {
            let batch: [(ticket: Ticket, change: StateChange)]? = state.withLock { state in
                guard !state.pending.isEmpty else { return nil }
                defer { state.pending = [] }
                return state.pending
            }
            if let batch { return batch }
            if state.withLock({ $0.finishing }) { return nil }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state in
                    if !state.pending.isEmpty || state.finishing { return true }
                    state.flusherWakeup = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    /// Wakes the waiters of every ticket up to `ticket`: with success, or with the batch's error.
    private func resolve(through ticket: Ticket, with error: StorageError?) {
        let ready = state.withLock { state in
            if let error {
                state.failure = (ticket, error)
            } else {
                state.durableThrough = ticket
                state.failure = nil
            }
            let (ready, rest) = state.waiters.reduce(into: ([Waiter](), [Waiter]())) { split, waiter in
                if waiter.ticket <= ticket { split.0.append(waiter) } else { split.1.append(waiter) }
            }
            state.waiters = rest
            return ready
        }
        for waiter in ready {
            if let error { waiter.continuation.resume(throwing: error) } else { waiter.continuation.resume() }
        }
    }
}

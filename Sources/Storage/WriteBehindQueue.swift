import RuntimeCore
import Synchronization

/// Write-behind queue with group commit: the engine enqueues durable changes synchronously (in the order it makes
/// them) and carries on; one flusher writes what is pending in one transaction, then wakes whoever waits for those
/// changes to be durable. Under load, many registrations share one fsync.
///
/// Changes travel in two lanes (``StateChange/lane``). Each lane is written in enqueue order. A membership change
/// (worker records, task records) may be written before data-ledger and checkpoint changes enqueued earlier, never
/// the other way round: every transaction takes every pending membership change, then at most
/// ``maxRowsPerTransaction`` rows of the bulk lane (a bigger change is split, see ``StateChange/split(first:)``). So
/// a registration waits for at most one bounded transaction, however much data work another task queued before it.
///
/// If a batch fails, its waiters get the error, and the batch stays at the head of its lanes and is retried with
/// backoff, so the disk catches up with memory once the fault clears.
public final class WriteBehindQueue: Sendable {
    /// The queue's two lanes.
    public enum Lane: Sendable, Hashable, CaseIterable {
        /// Worker and task records: small, and what views reflect.
        case membership
        /// Data ledgers, datasets and checkpoints.
        case bulk
    }

    /// Identifies one enqueued change; sequences grow in enqueue order across both lanes.
    public struct Ticket: Sendable, Hashable, Comparable, CustomStringConvertible {
        /// The change's position in enqueue order (0: before the first change).
        public let sequence: UInt64
        /// The change's lane; nil for ``WriteBehindQueue/lastTicket``, which stands for every change so far.
        public let lane: Lane?

        public static func < (a: Ticket, b: Ticket) -> Bool { a.sequence < b.sequence }

        public var description: String { "#\(sequence)" }
    }

    /// Rows one transaction takes from the bulk lane by default. Measured in a debug build on a loaded 2-core
    /// machine: ~0.1-0.2 s per transaction of shard rows, which is what a registration waits for at most.
    public static let defaultMaxRowsPerTransaction = 4096

    private struct Entry {
        var sequence: UInt64
        var change: StateChange
    }

    private struct Waiter {
        var ticket: Ticket
        var continuation: CheckedContinuation<Void, any Error>
    }

    /// A failed batch's sequences in one lane: waiters of those fail until a retry succeeds.
    private struct Failure {
        var first: UInt64
        var through: UInt64
        var error: StorageError
    }

    private struct State {
        var pending: [Lane: [Entry]] = [.membership: [], .bulk: []]
        var nextSequence: UInt64 = 1
        /// Per lane, every change of the lane up to this sequence is committed.
        var durable: [Lane: UInt64] = [.membership: 0, .bulk: 0]
        var failures: [Lane: Failure] = [:]
        var waiters: [Waiter] = []
        var flusherWakeup: CheckedContinuation<Void, Never>?
        var finishing = false
        /// Once set, the flusher stops at this instant (after the transaction in flight), dropping what is pending.
        var writeDeadline: ContinuousClock.Instant?
        var stopped = false
    }

    private let state = Mutex(State())
    private let commit: @Sendable ([StateChange]) async throws(StorageError) -> Void
    /// Most bulk-lane rows in one transaction.
    public let maxRowsPerTransaction: Int

    /// Creates a queue that writes batches with `commit` (usually ``SQLiteStateStore/commit(_:)``), each with at most
    /// `maxRowsPerTransaction` rows of the bulk lane.
    public init(
        maxRowsPerTransaction: Int = defaultMaxRowsPerTransaction,
        commit: @escaping @Sendable ([StateChange]) async throws(StorageError) -> Void
    ) {
        precondition(maxRowsPerTransaction > 0, "a transaction must take at least one row")
        self.maxRowsPerTransaction = maxRowsPerTransaction
        self.commit = commit
    }

    // MARK: Producer side

    /// Enqueues a change and returns its ticket. Never blocks.
    public func enqueue(_ change: StateChange) -> Ticket {
        let lane = change.lane
        let (ticket, wakeup) = state.withLock { state in
            let sequence = state.nextSequence
            state.nextSequence += 1
            state.pending[lane, default: []].append(Entry(sequence: sequence, change: change))
            let wakeup = state.flusherWakeup
            state.flusherWakeup = nil
            return (Ticket(sequence: sequence, lane: lane), wakeup)
        }
        wakeup?.resume()
        return ticket
    }

    /// A ticket for every change enqueued so far (sequence 0 before the first one): waiting for it waits for them all.
    public var lastTicket: Ticket { state.withLock { Ticket(sequence: $0.nextSequence - 1, lane: nil) } }

    /// Returns once the change with `ticket` is committed, with every earlier change of its lane (and, for a bulk
    /// change, every earlier membership change).
    ///
    /// - Throws: the batch's ``StorageError`` if writing it failed (at once, if it already failed and awaits a
    ///   retry), or `unavailable` if the queue stopped first.
    public func waitUntilDurable(_ ticket: Ticket) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome: Result<Void, StorageError>? = state.withLock { state in
                if Self.isDurable(ticket, in: state) { return .success(()) }
                if let error = Self.failure(of: ticket, in: state) { return .failure(error) }
                if state.stopped { return .failure(Self.stoppedError) }
                state.waiters.append(Waiter(ticket: ticket, continuation: continuation))
                return nil
            }
            if let outcome { continuation.resume(with: outcome.mapError { $0 as any Error }) }
        }
    }

    /// Whether the change with `ticket` (and what it waits for, as in ``waitUntilDurable(_:)``) is committed.
    public func isDurable(_ ticket: Ticket) -> Bool {
        state.withLock { Self.isDurable(ticket, in: $0) }
    }

    // MARK: Flusher

    /// Runs the flusher until ``finish()`` is called (or the task is cancelled) and everything pending is written, or
    /// until the time ``limitWrites(to:)`` allows runs out.
    ///
    /// - Returns: how many changes it dropped unwritten because the time ran out (0 when it wrote everything).
    @discardableResult
    public func run() async -> Int {
        await withTaskCancellationHandler {
            await flush()
        } onCancel: {
            finish()
        }
    }

    private func flush() async -> Int {
        var backoff = Duration.milliseconds(50)
        while let batch = await nextBatch() {
            do {
                try await commit(batch.map(\.change))
                resolve(batch, with: nil)
                backoff = .milliseconds(50)
            } catch {
                resolve(batch, with: error)
                let giveUp = state.withLock { state in
                    for lane in Lane.allCases {
                        let failed = batch.filter { $0.change.lane == lane }
                        state.pending[lane, default: []].insert(contentsOf: failed, at: 0)
                    }
                    return state.finishing
                }
                if giveUp { break }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
        let (waiters, wakeup, dropped) = state.withLock { state in
            state.stopped = true
            let dropped = state.pending.values.reduce(0) { $0 + $1.count }
            defer { state.waiters = [] }
            return (state.waiters, state.flusherWakeup, dropped)
        }
        wakeup?.resume()
        for waiter in waiters { waiter.continuation.resume(throwing: Self.stoppedError) }
        return dropped
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

    /// The coordinator is shutting down: the flusher writes for at most `budget` more (plus the transaction in flight
    /// then), and stops then even if changes are pending. What it drops was never acknowledged (every reply waits
    /// for its change), so a restart recovers as after a crash at that moment; a shutdown is bounded however big the
    /// backlog.
    public func limitWrites(to budget: Duration) {
        state.withLock { state in
            let deadline = ContinuousClock.now + budget
            state.writeDeadline = min(state.writeDeadline ?? deadline, deadline)
        }
    }

    /// Number of changes not yet committed (for metrics and tests).
    public var backlog: Int { state.withLock { $0.pending.values.reduce(0) { $0 + $1.count } } }

    private static let stoppedError = StorageError(
        .unavailable, "the coordinator is shutting down and did not persist this change: retry against the new one")

    /// The next batch: every pending membership change, then the bulk lane's oldest changes up to the row limit (the
    /// last one split if it does not fit), in enqueue order. Nil once finishing with nothing pending, or once the
    /// write deadline passed.
    private func nextBatch() async -> [Entry]? {
        while true {
            enum Next {
                case batch([Entry])
                case stop
                case wait
            }
            let next: Next = state.withLock { state in
                if let deadline = state.writeDeadline, ContinuousClock.now >= deadline { return .stop }
                let membership = state.pending[.membership] ?? []
                var bulk = state.pending[.bulk] ?? []
                if membership.isEmpty && bulk.isEmpty { return state.finishing ? .stop : .wait }
                var taken = membership
                // Membership changes are tiny; bulk work still gets a share when they arrive in floods.
                var room = max(maxRowsPerTransaction - membership.count, max(maxRowsPerTransaction / 4, 1))
                var count = 0
                while count < bulk.count, room > 0 {
                    let cost = bulk[count].change.cost
                    if cost <= room {
                        taken.append(bulk[count])
                        room -= cost
                        count += 1
                        continue
                    }
                    if let (head, rest) = bulk[count].change.split(first: room) {
                        taken.append(Entry(sequence: bulk[count].sequence, change: head))
                        bulk[count].change = rest
                    } else if taken.isEmpty {
                        // A change that cannot be split and is bigger than a transaction goes alone.
                        taken.append(bulk[count])
                        count += 1
                    }
                    break
                }
                state.pending[.membership] = []
                state.pending[.bulk] = Array(bulk.dropFirst(count))
                taken.sort { $0.sequence < $1.sequence }
                return .batch(taken)
            }
            switch next {
            case .batch(let batch): return batch
            case .stop: return nil
            case .wait: break
            }
            // Sleeps until a change (or finish) arrives; a write deadline only matters while something is pending.
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state in
                    if state.pending.values.contains(where: { !$0.isEmpty }) || state.finishing { return true }
                    state.flusherWakeup = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    /// After a batch: on success, moves each lane's durable mark up to its oldest change still pending (a split
    /// change stays pending until its last piece is written); on failure, records which sequences failed. Then wakes
    /// the waiters this settles.
    private func resolve(_ batch: [Entry], with error: StorageError?) {
        let ready = state.withLock { state in
            if let error {
                for lane in Lane.allCases {
                    let sequences = batch.filter { $0.change.lane == lane }.map(\.sequence)
                    if let first = sequences.first, let last = sequences.last {
                        state.failures[lane] = Failure(first: first, through: last, error: error)
                    }
                }
            } else {
                for lane in Lane.allCases {
                    state.durable[lane] = (state.pending[lane]?.first?.sequence ?? state.nextSequence) - 1
                    // A lane's failed changes went back to its head, so a batch with any of the lane's changes
                    // wrote them.
                    if batch.contains(where: { $0.change.lane == lane }) { state.failures[lane] = nil }
                }
            }
            var ready: [(Waiter, StorageError?)] = []
            var rest: [Waiter] = []
            for waiter in state.waiters {
                if Self.isDurable(waiter.ticket, in: state) {
                    ready.append((waiter, nil))
                } else if let error = Self.failure(of: waiter.ticket, in: state) {
                    ready.append((waiter, error))
                } else {
                    rest.append(waiter)
                }
            }
            state.waiters = rest
            return ready
        }
        for (waiter, error) in ready {
            if let error { waiter.continuation.resume(throwing: error) } else { waiter.continuation.resume() }
        }
    }

    private static func isDurable(_ ticket: Ticket, in state: State) -> Bool {
        if let lane = ticket.lane { return ticket.sequence <= state.durable[lane, default: 0] }
        return Lane.allCases.allSatisfy { ticket.sequence <= state.durable[$0, default: 0] }
    }

    /// The error of a failed batch the ticket waits for, if any.
    private static func failure(of ticket: Ticket, in state: State) -> StorageError? {
        for lane in ticket.lane.map({ [$0] }) ?? Lane.allCases {
            if let failure = state.failures[lane], failure.first <= ticket.sequence,
                ticket.lane == nil || ticket.sequence <= failure.through
            {
                return failure.error
            }
        }
        return nil
    }
}

import RuntimeCore
import Synchronization

/// Write-behind queue with group commit: the engine enqueues durable changes synchronously (in the order it makes
/// them) and carries on; one flusher writes what is pending in one transaction, then wakes whoever waits for those
/// changes to be durable. Under load, many registrations share one fsync.
///
/// Changes travel in two lanes (``StateChange/lane``). A membership change (worker records, task records) may be
/// written before data-ledger and checkpoint changes enqueued earlier, never the other way round: every transaction
/// takes every pending membership change, then at most ``maxRowsPerTransaction`` rows of the bulk lane (a bigger
/// change is split, see ``StateChange/split(first:)``). So a registration waits for at most one bounded transaction,
/// however much data work another task queued before it.
///
/// The bulk lane is fair across tasks (``StateChange/bulkTask``): each task's changes are written in enqueue order,
/// but a transaction shares its rows out among the tasks with changes pending (max-min: a task needing less than an
/// equal share gets all it needs, the rest is split among the others), so one task's huge backlog delays another
/// task's shard progress by at most the transaction in flight. Changes of no task (dataset registrations, which
/// later ledger changes may refer to) go first in every transaction. The membership lane is written in enqueue
/// order.
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
        /// For a bulk change, the task whose part of the lane it is in (nil: a change of no task).
        let task: TaskID?

        init(sequence: UInt64, lane: Lane?, task: TaskID? = nil) {
            self.sequence = sequence
            self.lane = lane
            self.task = task
        }

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
        /// Membership changes not written yet, in enqueue order.
        var membership: [Entry] = []
        /// Bulk changes not written yet, per task (nil: changes of no task), each in enqueue order.
        var bulk: [TaskID?: [Entry]] = [:]
        /// The tasks with bulk changes pending, in the order the next transaction breaks ties in.
        var rotation: [TaskID] = []
        /// The oldest sequence of each task's bulk changes in the batch being written (they are pending until then).
        var inFlight: [TaskID?: UInt64] = [:]
        var nextSequence: UInt64 = 1
        /// Every membership change up to this sequence is committed.
        var membershipDurable: UInt64 = 0
        var membershipFailure: Failure?
        /// Per task, the failed bulk batch's sequences of that task.
        var bulkFailures: [TaskID?: Failure] = [:]
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
            let entry = Entry(sequence: sequence, change: change)
            var ticket = Ticket(sequence: sequence, lane: lane)
            switch lane {
            case .membership:
                state.membership.append(entry)
            case .bulk:
                let task = change.bulkTask
                if let task, state.bulk[task]?.isEmpty ?? true { state.rotation.append(task) }
                state.bulk[task, default: []].append(entry)
                ticket = Ticket(sequence: sequence, lane: lane, task: task)
            }
            let wakeup = state.flusherWakeup
            state.flusherWakeup = nil
            return (ticket, wakeup)
        }
        wakeup?.resume()
        return ticket
    }

    /// A ticket for every change enqueued so far (sequence 0 before the first one): waiting for it waits for them all.
    public var lastTicket: Ticket { state.withLock { Ticket(sequence: $0.nextSequence - 1, lane: nil) } }

    /// Returns once the change with `ticket` is committed, with every earlier change of its lane (for a bulk change:
    /// of its task, and every earlier change of no task and membership change).
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
                let giveUp = state.withLock { state in
                    // Back at the head of their lanes (before the failure is resolved, so that no waiter of theirs
                    // is ever taken for durable).
                    state.membership.insert(contentsOf: batch.filter { $0.change.lane == .membership }, at: 0)
                    var failedBulk: [TaskID?: [Entry]] = [:]
                    for entry in batch where entry.change.lane == .bulk {
                        failedBulk[entry.change.bulkTask, default: []].append(entry)
                    }
                    for (task, entries) in failedBulk {
                        if let task, state.bulk[task]?.isEmpty ?? true { state.rotation.insert(task, at: 0) }
                        state.bulk[task, default: []].insert(contentsOf: entries, at: 0)
                    }
                    return state.finishing
                }
                resolve(batch, with: error)
                if giveUp { break }
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
        let (waiters, wakeup, dropped) = state.withLock { state in
            state.stopped = true
            let dropped = Self.pendingCount(state)
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
    public var backlog: Int { state.withLock { Self.pendingCount($0) } }

    private static func pendingCount(_ state: State) -> Int {
        state.membership.count + state.bulk.values.reduce(0) { $0 + $1.count }
    }

    private static let stoppedError = StorageError(
        .unavailable, "the coordinator is shutting down and did not persist this change: retry against the new one")

    /// The next batch: every pending membership change, every pending bulk change of no task, then up to the row
    /// limit of the tasks' bulk changes, shared out fairly (see ``takeBulk(_:room:)``), in enqueue order. Nil once
    /// finishing with nothing pending, or once the write deadline passed.
    private func nextBatch() async -> [Entry]? {
        while true {
            enum Next {
                case batch([Entry])
                case stop
                case wait
            }
            let next: Next = state.withLock { state in
                if let deadline = state.writeDeadline, ContinuousClock.now >= deadline { return .stop }
                if Self.pendingCount(state) == 0 { return state.finishing ? .stop : .wait }
                var taken = state.membership
                state.membership = []
                // Membership changes are tiny; bulk work still gets a share when they arrive in floods.
                var room = max(maxRowsPerTransaction - taken.count, max(maxRowsPerTransaction / 4, 1))
                // Changes of no task are tiny too (dataset registrations), and a task's ledger may refer to them.
                let untasked = state.bulk.removeValue(forKey: nil) ?? []
                taken += untasked
                room = max(room - untasked.count, 1)
                taken += Self.takeBulk(&state, room: room)
                state.inFlight = [:]
                for entry in taken where entry.change.lane == .bulk {
                    let task = entry.change.bulkTask
                    state.inFlight[task] = min(state.inFlight[task] ?? entry.sequence, entry.sequence)
                }
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
                    if Self.pendingCount(state) > 0 || state.finishing { return true }
                    state.flusherWakeup = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        }
    }

    /// Takes up to `room` rows of the tasks' bulk changes, max-min fair: tasks in order of how many rows they have
    /// pending (ties: in ``State/rotation`` order), each taking what it needs up to an equal share of the room left,
    /// from the head of its changes (the last one split if it does not fit). Tasks left without rows (more tasks
    /// than rows) go first in the rotation next time.
    private static func takeBulk(_ state: inout State, room: Int) -> [Entry] {
        let order = state.rotation
        let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        // What each task needs, counted only as far as the whole room.
        let needs = order.map { task in
            var need = 0
            for entry in state.bulk[task] ?? [] where need < room { need += entry.change.cost }
            return (task: task, need: need)
        }
        var room = room
        var taken: [Entry] = []
        var served: [TaskID] = []
        var unserved: [TaskID] = []
        // More tasks than rows: one row each, in rotation order (those left out go first next time); else max-min.
        let sorted =
            order.count > room
            ? order
            : needs.sorted { ($0.need, position[$0.task] ?? 0) < ($1.need, position[$1.task] ?? 0) }.map(\.task)
        for (index, task) in sorted.enumerated() {
            guard room > 0 else {
                unserved.append(task)
                continue
            }
            var quota = max(room / (sorted.count - index), 1)
            // Out of the state while it changes, so that the array is not copied.
            var entries = state.bulk.removeValue(forKey: task) ?? []
            var count = 0
            while count < entries.count, quota > 0 {
                let cost = entries[count].change.cost
                if cost <= quota {
                    taken.append(entries[count])
                    quota -= cost
                    room -= cost
                    count += 1
                    continue
                }
                if let (head, rest) = entries[count].change.split(first: quota) {
                    taken.append(Entry(sequence: entries[count].sequence, change: head))
                    entries[count].change = rest
                    room -= quota
                } else if taken.isEmpty {
                    // A change that cannot be split and is bigger than a transaction goes alone.
                    taken.append(entries[count])
                    room = 0
                    count += 1
                }
                break
            }
            entries.removeFirst(count)
            state.bulk[task] = entries.isEmpty ? nil : entries
            if !entries.isEmpty { served.append(task) }
        }
        // Unserved tasks first, then the served ones still pending, each group in its old order.
        state.rotation =
            unserved.sorted { position[$0] ?? 0 < position[$1] ?? 0 }
            + served.sorted { position[$0] ?? 0 < position[$1] ?? 0 }
        return taken
    }

    /// After a batch: on success, moves each lane's durable mark up to its oldest change still pending (a split
    /// change stays pending until its last piece is written); on failure, records which sequences failed. Then wakes
    /// the waiters this settles.
    private func resolve(_ batch: [Entry], with error: StorageError?) {
        let ready = state.withLock { state in
            state.inFlight = [:]
            let membership = batch.filter { $0.change.lane == .membership }.map(\.sequence)
            var bulk: [TaskID?: [UInt64]] = [:]
            for entry in batch where entry.change.lane == .bulk {
                bulk[entry.change.bulkTask, default: []].append(entry.sequence)
            }
            if let error {
                if let first = membership.first, let last = membership.last {
                    state.membershipFailure = Failure(first: first, through: last, error: error)
                }
                for (task, sequences) in bulk {
                    if let first = sequences.first, let last = sequences.last {
                        state.bulkFailures[task] = Failure(first: first, through: last, error: error)
                    }
                }
            } else {
                state.membershipDurable = (state.membership.first?.sequence ?? state.nextSequence) - 1
                // A lane's failed changes went back to its head, so a batch with any of the lane's changes wrote
                // them (or wrote earlier ones, and retries the rest).
                if !membership.isEmpty { state.membershipFailure = nil }
                for task in bulk.keys { state.bulkFailures[task] = nil }
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
        /// Whether a bulk change of `task` at or before `sequence` is still pending or being written.
        func unwritten(_ task: TaskID?) -> Bool {
            if let first = state.bulk[task]?.first, first.sequence <= ticket.sequence { return true }
            if let oldest = state.inFlight[task], oldest <= ticket.sequence { return true }
            return false
        }
        switch ticket.lane {
        case .membership:
            return ticket.sequence <= state.membershipDurable
        case .bulk:
            return !unwritten(ticket.task) && !unwritten(nil)
        case nil:
            return ticket.sequence <= state.membershipDurable
                && !state.bulk.keys.contains(where: unwritten) && !state.inFlight.keys.contains(where: unwritten)
        }
    }

    /// The error of a failed batch the ticket waits for, if any.
    private static func failure(of ticket: Ticket, in state: State) -> StorageError? {
        switch ticket.lane {
        case .membership:
            if let failure = state.membershipFailure, (failure.first...failure.through).contains(ticket.sequence) {
                return failure.error
            }
        case .bulk:
            if let failure = state.bulkFailures[ticket.task],
                (failure.first...failure.through).contains(ticket.sequence)
            {
                return failure.error
            }
        case nil:
            // Every change so far: any failure at or before it.
            let failures = [state.membershipFailure].compactMap { $0 } + Array(state.bulkFailures.values)
            return failures.first { $0.first <= ticket.sequence }?.error
        }
        return nil
    }
}

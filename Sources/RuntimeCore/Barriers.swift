/// A named barrier of one task.
public struct BarrierKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The task.
    public var task: TaskID
    /// The barrier's name (reusable: each use is a new generation).
    public var name: String

    /// Creates a key.
    public init(task: TaskID, name: String) {
        self.task = task
        self.name = name
    }

    public static func < (a: BarrierKey, b: BarrierKey) -> Bool { (a.task, a.name) < (b.task, b.name) }

    public var description: String { "\(name) of task \(task)" }
}

/// One use (generation) of a barrier.
public struct BarrierID: Sendable, Hashable {
    /// The barrier.
    public var key: BarrierKey
    /// The generation, counting from 1 per barrier.
    public var generation: UInt64
}

/// A member as barriers report it.
public struct RankedWorker: Sendable, Hashable {
    /// Rank in the task when the barrier opened (or when the worker arrived).
    public var rank: Int
    /// The worker.
    public var worker: WorkerID

    /// Creates a ranked worker.
    public init(rank: Int, worker: WorkerID) {
        self.rank = rank
        self.worker = worker
    }
}

/// What a released barrier hands every participant.
public struct BarrierRelease: Sendable, Hashable {
    /// The generation released.
    public var generation: UInt64
    /// The participants, by rank.
    public var participants: [RankedWorker]
    /// The reduced vector, when the participants sent one.
    public var result: ReduceInput?
    /// Whether the barrier was for every member (then `participants` are exactly the members at `membershipEpoch`).
    public var everyMember: Bool
    /// The task's membership epoch when the generation opened.
    public var membershipEpoch: UInt64
}

/// Why a barrier generation failed; every waiter gets it.
public struct BarrierFailure: CodedError, Hashable {
    /// `aborted`, `deadlineExceeded` or `invalidArgument`.
    public var code: ErrorCode
    /// What happened and who is missing.
    public var message: String
    /// The members that had not arrived (or that departed), by rank.
    public var missing: [RankedWorker]

    /// `BARRIER_ABORTED`, `BARRIER_TIMEOUT` or `BARRIER_MISMATCH`, by code.
    public var reason: ErrorReason {
        switch code {
        case .aborted: .barrierAborted
        case .deadlineExceeded: .barrierTimeout
        case .invalidArgument: .barrierMismatch
        default: ErrorReason(generic: code)
        }
    }

    /// Who was missing.
    public var details: ErrorDetails { ErrorDetails(missing: missing) }
}

/// What a participant asks of a barrier.
public struct BarrierArrival: Sendable, Hashable {
    /// How many workers must arrive; 0 means every current member of the task.
    public var expected: Int
    /// How long the arrival is willing to wait.
    public var timeout: Duration
    /// What it contributes to the reduce, if anything.
    public var payload: ReduceInput?

    /// Creates an arrival.
    public init(expected: Int = 0, timeout: Duration, payload: ReduceInput? = nil) {
        self.expected = expected
        self.timeout = timeout
        self.payload = payload
    }
}

/// Every task's barriers: arrivals, generations, releases and failures.
///
/// A pure state machine: the shell parks each arriving call on the returned ``BarrierID`` and resumes the parked
/// calls when a directive releases or fails that generation. A generation releases once every expected participant
/// arrived; it fails for everyone at once when the participants disagree on the reduce (INVALID_ARGUMENT), when a
/// participant departs or the membership it was opened for changes (ABORTED), or when the earliest arrival's timeout
/// passes (DEADLINE_EXCEEDED), always naming who is missing.
public struct BarrierTable: Sendable {
    /// What the shell must do.
    public enum Directive: Sendable, Hashable {
        /// Resume every call parked on the generation with this release.
        case release(BarrierID, BarrierRelease, arrivals: [WorkerID: Duration])
        /// Fail every call parked on the generation.
        case fail(BarrierID, BarrierFailure)
    }

    /// How many barrier names' generation counters are remembered. Beyond, the counters of names with no open
    /// generation are forgotten (those names count from 1 again), so a client using ever new names cannot grow the
    /// table without bound; far more names than a job reuses.
    public static let maxRememberedNames = 4096
    /// How many generations one task may have open at once (each waits for arrivals and holds their payloads).
    public static let maxOpenPerTask = 1024

    /// Largest payload one participant may send, in bytes.
    public let maxPayloadBytes: Int
    /// Largest total of payloads waiting for their release, in bytes.
    public var maxPendingBytes: Int { 16 * maxPayloadBytes }

    private struct Arrived {
        var rank: Int
        var at: Duration
        var payload: ReduceInput?
    }

    private struct Open {
        var id: BarrierID
        var expected: Int
        /// When `expected` is "every member": the members it was opened for, in rank order.
        var members: [WorkerID]?
        var arrivals: [WorkerID: Arrived] = [:]
        var deadline: Duration
        var openedAt: Duration
        var membershipEpoch: UInt64
        var pendingBytes = 0
    }

    private var open: [BarrierKey: Open] = [:]
    private var openPerTask: [TaskID: Int] = [:]
    private var generations: [BarrierKey: UInt64] = [:]

    /// How many names' generation counters are remembered now (at most ``maxRememberedNames`` plus the open ones).
    public var rememberedNames: Int { generations.count }
    private var pendingBytes = 0

    /// A table with no barriers.
    public init(maxPayloadBytes: Int = 64 << 20) {
        self.maxPayloadBytes = maxPayloadBytes
    }

    // MARK: Events

    /// A member arrives at `key`. `members` are the task's current members in rank order, `membershipEpoch` the
    /// task's current epoch and `seenEpoch` the one the worker knows.
    ///
    /// - Returns: the generation to park the call on, and directives (the arrival may complete or fail it).
    /// - Throws: what ``MembershipFence`` throws (a stale or future epoch, a non-member); `invalidArgument` for an
    ///   impossible `expected`; `resourceExhausted` (`TOO_LARGE`, `LIMIT_REACHED`) for a payload over the limits.
    ///   These concern the caller only.
    public mutating func onArrive(
        _ key: BarrierKey, worker: WorkerID, arrival: BarrierArrival, seenEpoch: UInt64, membershipEpoch: UInt64,
        members: [WorkerID], now: Duration
    ) throws(CoreError) -> (id: BarrierID, directives: [Directive]) {
        try MembershipFence.check(
            seenEpoch, current: membershipEpoch, task: key.task, rule: .current,
            advice: "refresh the view and arrive again")
        guard let rank = members.firstIndex(of: worker) else {
            throw MembershipFence.notAMember(worker, task: key.task)
        }
        guard (0...members.count).contains(arrival.expected) else {
            throw .invalid(
                "expected", "must be between 0 (every member) and the world size \(members.count)",
                got: String(arrival.expected))
        }
        let bytes = arrival.payload?.vector.byteCount ?? 0
        guard bytes <= maxPayloadBytes else {
            throw CoreError(
                .resourceExhausted,
                "payload of \(bytes) bytes is over the \(maxPayloadBytes)-byte limit per participant "
                    + "(dtr serve --barrier-max-payload): reduce in chunks",
                reason: .tooLarge)
        }

        if var current = open[key] {
            if current.arrivals[worker] != nil { return (current.id, []) }
            guard pendingBytes + bytes <= maxPendingBytes else { throw Self.overBudget(maxPendingBytes) }
            current.arrivals[worker] = Arrived(rank: rank, at: now, payload: arrival.payload)
            current.deadline = Swift.min(current.deadline, now + arrival.timeout)
            current.pendingBytes += bytes
            pendingBytes += bytes
            open[key] = current
            if let mismatch = disagreement(current, arrival: arrival, worker: worker, rank: rank) {
                return (current.id, [close(key, failing: mismatch)])
            }
            return (current.id, releaseIfComplete(key, members: members))
        }

        guard pendingBytes + bytes <= maxPendingBytes else { throw Self.overBudget(maxPendingBytes) }
        guard openPerTask[key.task, default: 0] < Self.maxOpenPerTask else {
            throw CoreError(
                .resourceExhausted,
                "task \(key.task) already has \(Self.maxOpenPerTask) barrier generations open, the most it may: "
                    + "let them release or time out before opening more under new names")
        }
        // Open generations are at most maxOpenPerTask per task, so at the threshold at least maxRememberedNames
        // counters can go: one pass per that many new names at most.
        if generations[key] == nil, generations.count >= Self.maxRememberedNames + open.count {
            generations = generations.filter { open[$0.key] != nil }
        }
        let generation = (generations[key] ?? 0) + 1
        generations[key] = generation
        let id = BarrierID(key: key, generation: generation)
        var fresh = Open(
            id: id, expected: arrival.expected == 0 ? members.count : arrival.expected,
            members: arrival.expected == 0 ? members : nil, deadline: now + arrival.timeout, openedAt: now,
            membershipEpoch: membershipEpoch)
        fresh.arrivals[worker] = Arrived(rank: rank, at: now, payload: arrival.payload)
        fresh.pendingBytes = bytes
        pendingBytes += bytes
        open[key] = fresh
        openPerTask[key.task, default: 0] += 1
        return (id, releaseIfComplete(key, members: members))
    }

    /// The task's membership changed (`reason` says how): generations opened for every member fail if the members
    /// differ now; any generation fails if a worker that arrived departed or too few members are left.
    public mutating func onMembershipChange(
        task: TaskID, members: [WorkerID], reason: String
    ) -> [Directive] {
        // Every join calls this: with no barrier open in the task (a rendezvous), it costs no set of the members.
        guard openPerTask[task, default: 0] > 0 else { return [] }
        let keys = open.keys.filter { $0.task == task }
        let current = Set(members)
        var directives: [Directive] = []
        for key in keys.sorted() {
            guard let barrier = open[key] else { continue }
            let departedArrivals = barrier.arrivals.filter { !current.contains($0.key) }
            let changed = barrier.members.map { $0 != members } ?? false
            guard changed || !departedArrivals.isEmpty || members.count < barrier.expected else { continue }
            var missing: [RankedWorker]
            if let expectedMembers = barrier.members {
                missing = expectedMembers.enumerated()
                    .filter { barrier.arrivals[$0.element] == nil || !current.contains($0.element) }
                    .map { RankedWorker(rank: $0.offset, worker: $0.element) }
            } else {
                missing = departedArrivals.map { RankedWorker(rank: $0.value.rank, worker: $0.key) }
            }
            missing.sort { $0.rank < $1.rank }
            let failure = BarrierFailure(
                code: .aborted,
                message: "barrier \(key.name) generation \(barrier.id.generation) aborted: the membership of task "
                    + "\(task) changed (\(reason)); missing \(Self.describe(missing)). Refresh the view and retry",
                missing: missing)
            directives.append(close(key, failing: failure))
        }
        return directives
    }

    /// Fails every generation whose earliest arrival's timeout has passed.
    public mutating func onTick(now: Duration) -> [Directive] {
        var directives: [Directive] = []
        for key in open.keys.sorted() {
            guard let barrier = open[key], barrier.deadline <= now else { continue }
            let missing: [RankedWorker]
            if let members = barrier.members {
                missing = members.enumerated().filter { barrier.arrivals[$0.element] == nil }
                    .map { RankedWorker(rank: $0.offset, worker: $0.element) }
            } else {
                missing = []
            }
            let waitedFor =
                barrier.members == nil
                ? "\(barrier.expected - barrier.arrivals.count) more of the \(barrier.expected) expected"
                : Self.describe(missing)
            let failure = BarrierFailure(
                code: .deadlineExceeded,
                message: "barrier \(key.name) generation \(barrier.id.generation) timed out after "
                    + "\(now - barrier.openedAt): \(barrier.arrivals.count) of \(barrier.expected) arrived; missing "
                    + waitedFor,
                missing: missing)
            directives.append(close(key, failing: failure))
        }
        return directives
    }

    // MARK: Queries

    /// The open generations, for `/api/barriers`.
    public func snapshot(now: Duration) -> [BarrierSnapshot] {
        open.values.sorted { $0.id.key < $1.id.key }.map { barrier in
            let missing =
                barrier.members.map { members in
                    members.enumerated().filter { barrier.arrivals[$0.element] == nil }
                        .map { RankedWorker(rank: $0.offset, worker: $0.element) }
                } ?? []
            return BarrierSnapshot(
                id: barrier.id, arrived: barrier.arrivals.count, expected: barrier.expected, missing: missing,
                age: now - barrier.openedAt, timeoutIn: barrier.deadline - now)
        }
    }

    // MARK: Internals

    private func disagreement(_ barrier: Open, arrival: BarrierArrival, worker: WorkerID, rank: Int)
        -> BarrierFailure?
    {
        guard let other = barrier.arrivals.first(where: { $0.key != worker }) else { return nil }
        let expected = arrival.expected == 0 ? nil : arrival.expected
        let openExpected = barrier.members == nil ? barrier.expected : nil
        if expected != openExpected {
            let described = { (value: Int?) in value.map { "expected=\($0)" } ?? "expected=0 (every member)" }
            return BarrierFailure(
                code: .invalidArgument,
                message: "barrier \(barrier.id.key.name): rank \(rank) (\(worker)) arrived with \(described(expected)) "
                    + "but rank \(other.value.rank) (\(other.key)) with \(described(openExpected))",
                missing: [])
        }
        let mine = arrival.payload?.shape ?? "no payload"
        let theirs = other.value.payload?.shape ?? "no payload"
        guard mine != theirs else { return nil }
        return BarrierFailure(
            code: .invalidArgument,
            message: "barrier \(barrier.id.key.name): participants disagree on the reduce: rank \(rank) (\(worker)) "
                + "sent \(mine), rank \(other.value.rank) (\(other.key)) sent \(theirs)",
            missing: [])
    }

    private mutating func releaseIfComplete(_ key: BarrierKey, members: [WorkerID]) -> [Directive] {
        guard let barrier = open[key] else { return [] }
        let complete: Bool
        if let expectedMembers = barrier.members {
            complete = expectedMembers.allSatisfy { barrier.arrivals[$0] != nil }
        } else {
            complete = barrier.arrivals.count >= barrier.expected
        }
        guard complete else { return [] }
        let participants = barrier.arrivals.map { RankedWorker(rank: $0.value.rank, worker: $0.key) }
            .sorted { $0.rank != $1.rank ? $0.rank < $1.rank : $0.worker < $1.worker }
        let inputs = participants.compactMap { barrier.arrivals[$0.worker]?.payload }
        let result = reduce(inputs).map { ReduceInput(op: inputs[0].op, vector: $0) }
        let release = BarrierRelease(
            generation: barrier.id.generation, participants: participants, result: result,
            everyMember: barrier.members != nil, membershipEpoch: barrier.membershipEpoch)
        remove(key)
        return [.release(barrier.id, release, arrivals: barrier.arrivals.mapValues(\.at))]
    }

    private mutating func close(_ key: BarrierKey, failing failure: BarrierFailure) -> Directive {
        let id = open[key]?.id ?? BarrierID(key: key, generation: generations[key] ?? 0)
        remove(key)
        return .fail(id, failure)
    }

    private mutating func remove(_ key: BarrierKey) {
        guard let barrier = open.removeValue(forKey: key) else { return }
        pendingBytes -= barrier.pendingBytes
        let left = openPerTask[key.task, default: 1] - 1
        openPerTask[key.task] = left > 0 ? left : nil
    }

    private static func describe(_ workers: [RankedWorker]) -> String {
        workers.isEmpty ? "nobody" : workers.map { "rank \($0.rank) (\($0.worker))" }.joined(separator: ", ")
    }

    private static func overBudget(_ limit: Int) -> CoreError {
        CoreError(
            .resourceExhausted,
            "barrier payloads waiting for their release already hold \(limit) bytes: retry, or reduce in chunks",
            reason: .limitReached)
    }
}

/// An open barrier generation as `/api/barriers` shows it.
public struct BarrierSnapshot: Sendable, Hashable {
    /// Which generation.
    public var id: BarrierID
    /// Participants arrived.
    public var arrived: Int
    /// Participants expected.
    public var expected: Int
    /// Members not arrived yet (for barriers of every member).
    public var missing: [RankedWorker]
    /// Time since the first arrival.
    public var age: Duration
    /// Time until the earliest arrival's timeout.
    public var timeoutIn: Duration
}

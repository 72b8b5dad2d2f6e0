/// Membership of every task: who is in, their dense ranks, the membership epoch, and the soft state the failure
/// detector works on (last heartbeat, health, step, metrics).
///
/// A pure state machine in the style of `SWIM.Instance`: every event takes the current ``Moment`` and returns
/// ``Directive``s for the shell (persist, push, log). It never reads a clock, sleeps or does I/O.
public struct Membership: Sendable {
    /// The failure detector's timeouts.
    public let config: MembershipConfig

    /// Every known worker (members, and departed ones until the retention passes).
    var entries = EntryTable()
    private var rosters: [TaskID: TaskRoster] = [:]
    private var nextJoinSeq: UInt64 = 1
    /// Monotonic time of the last tick, to notice a stalled coordinator.
    var lastTick: Duration?
    /// The earliest moment (monotonic) a member can be declared dead, as of the last tick: the shell may tick then
    /// rather than at its next regular tick, so that a death is declared at its dead timeout, not up to a tick later.
    /// A lower bound: heartbeats since only move deaths later, and a worker that joins since dies a whole timeout
    /// after it joined. Nil when there is no member.
    public internal(set) var nextDeathDue: Duration?
    /// Restored members not heard from since the restart, until one dead timeout after it (``restoredAt``): the
    /// coordinator was away, not they, so they are not suspected while their sessions come back (a restart of 10,000
    /// workers suspected them all, then logged each one's recovery, on the engine's busiest seconds). One still silent
    /// at the end of the grace is declared dead as before.
    var restoredUnheard: Set<WorkerID> = []
    /// When the membership was restored (monotonic), while ``restoredUnheard`` is in force.
    var restoredAt: Duration?

    /// One known worker: its durable record plus soft state.
    struct Entry: Sendable {
        var record: WorkerRecord
        var health: WorkerHealth
        /// Monotonic time of the last sign of life (registration or heartbeat).
        var lastSeen: Duration
        /// Monotonic time it stopped being a member, for the retention.
        var departedAt: Duration?
        var step: Int64 = 0
        var metrics: [String: Double] = [:]

        var isMember: Bool { record.standing == .member }
    }

    // MARK: Creation

    /// An empty membership.
    public init(config: MembershipConfig = .defaults) {
        self.config = config
    }

    /// Membership restored from the durable state after a coordinator restart.
    ///
    /// Every member gets one full dead timeout of grace from `now`: the coordinator was away, not the workers. None is
    /// suspected in that time before it is heard from again (see ``restoredUnheard``).
    public init(
        config: MembershipConfig = .defaults, restoring records: [WorkerRecord], epochs: [TaskID: UInt64],
        now: Moment
    ) {
        self.config = config
        for (task, epoch) in epochs { rosters[task] = TaskRoster(epoch: epoch) }
        for record in records.sorted(by: { $0.joinSeq < $1.joinSeq }) {
            var entry = Entry(record: record, health: .healthy, lastSeen: now.monotonic)
            switch record.standing {
            case .member:
                rosters[record.spec.taskID, default: TaskRoster()].append(record.spec.id)
                restoredUnheard.insert(record.spec.id)
            case .dead:
                entry.health = .dead
                entry.departedAt = now.monotonic
            case .left:
                entry.health = .left
                entry.departedAt = now.monotonic
            }
            entries[record.spec.id] = entry
            nextJoinSeq = max(nextJoinSeq, record.joinSeq + 1)
        }
        lastTick = now.monotonic
        if !restoredUnheard.isEmpty { restoredAt = now.monotonic }
    }

    /// Most workers tracked at once (members, and departed ones not forgotten yet): memory stays bounded whatever
    /// clients send.
    public static let maxWorkers = 100_000

    // MARK: Events

    /// A worker registers. A live member registering again keeps its rank (idempotent); anyone else joins its task at
    /// the next rank and the task's epoch bumps. A live member registering into its task from another process
    /// (another incarnation) was restarted: see ``onRestart(_:secret:now:)``.
    ///
    /// - Parameters:
    ///   - secret: the digest of the secret this registration hands out; the record keeps it when the worker joins
    ///     or restarts (a registration repeated by the same incarnation keeps the secret it has).
    ///   - presented: the digest of the secret the caller sent. Registering a worker id that is a live member needs
    ///     that member's secret (see ``authenticate(_:presented:)``) while the member heartbeats: a worker token
    ///     alone cannot take over a live worker's id. A member silent for the suspect timeout may be taken over
    ///     without it (a crashed process's restart), and gets a new secret.
    /// - Throws: `failedPrecondition` when the worker is a live member of another task (a worker id names one worker
    ///   of one task at a time); `permissionDenied` (`WORKER_ID_IN_USE`, with how long until the member has been
    ///   silent for the suspect timeout) for a heartbeating member's id in its task without its secret.
    public mutating func onRegister(
        _ spec: WorkerSpec, secret: SecretDigest? = nil, presented: SecretDigest? = nil, now: Moment
    ) throws(CoreError) -> (view: MembershipView, directives: [Directive]) {
        var proven = true
        if let entry = entries[spec.id], entry.isMember {
            let current = entry.record.spec.taskID
            guard current == spec.taskID else {
                throw CoreError(
                    .failedPrecondition,
                    "worker_id \(spec.id) is already a live member of task \(current); deregister it first or "
                        + "register with another worker_id")
            }
            proven = try Self.claim(entry, presented: presented, config: config, now: now)
        }
        if let entry = entries[spec.id], entry.isMember, entry.record.spec.isAnotherIncarnation(spec) {
            return onRestart(spec, secret: secret, now: now)
        }
        if var entry = entries[spec.id], entry.isMember {
            var directives = Self.refresh(&entry, at: now.monotonic, now: now, suspectAfter: config.suspectAfter)
            heard(spec.id)
            // Proven: the worker keeps its secret. Not (a silent member taken over by its own incarnation, e.g. a
            // registration retried after its reply was lost): a new one.
            let digest = proven ? (entry.record.secretDigest ?? secret) : secret
            if entry.record.spec != spec || entry.record.secretDigest != digest {
                entry.record.spec = spec
                entry.record.secretDigest = digest
                directives.append(.persist(MembershipChange(upserted: [entry.record])))
            }
            entries[spec.id] = entry
            return (view(of: entry), directives)
        }

        guard entries[spec.id] != nil || entries.count < Self.maxWorkers else {
            throw CoreError(
                .resourceExhausted,
                "this coordinator already tracks \(Self.maxWorkers) workers: deregister finished ones (departed workers "
                    + "are forgotten 10 minutes after they leave)",
                reason: .limitReached)
        }
        let record = WorkerRecord(
            spec: spec, joinSeq: nextJoinSeq, registeredAtMillis: now.unixMillis, standing: .member,
            secretDigest: secret)
        nextJoinSeq += 1
        let entry = Entry(record: record, health: .healthy, lastSeen: now.monotonic)
        entries[spec.id] = entry
        // In place: a copy taken out of the dictionary would copy the member list and slot index at every join.
        let roster = modifyRoster(of: spec.taskID) { roster in
            roster.append(spec.id)
            roster.epoch += 1
            return roster
        }
        let rank = roster.worldSize - 1
        return (
            view(of: entry),
            [
                .persist(MembershipChange(upserted: [record], epochs: [spec.taskID: roster.epoch])),
                .membershipChanged(
                    spec.taskID, members: roster.members, epoch: roster.epoch, cause: .joined(spec.id, rank: rank)),
                .log(.joined(spec.id, spec.taskID, rank: rank, epoch: roster.epoch)),
            ]
        )
    }

    /// A live member registers from a new process (a restart within the dead timeout): it keeps its rank, but the
    /// old process counts as gone. Two membership changes follow, each bumping the epoch: one without the worker
    /// (barrier generations and pending checkpoints it took part in fail, its shards move to the others: nobody
    /// waits for, or trusts, the dead process), then one with it again (it takes a fair share of unstarted shards).
    mutating func onRestart(_ spec: WorkerSpec, secret: SecretDigest?, now: Moment) -> (
        view: MembershipView, directives: [Directive]
    ) {
        guard var entry = entries[spec.id], var roster = rosters[spec.taskID] else {
            preconditionFailure("onRestart needs a live member")
        }
        entry.record.spec = spec
        entry.record.secretDigest = secret ?? entry.record.secretDigest
        entry.record.registeredAtMillis = now.unixMillis
        entry.lastSeen = now.monotonic
        entry.health = .healthy
        entry.step = 0
        entry.metrics = [:]
        entries[spec.id] = entry
        roster.epoch += 1
        let departed = roster.epoch
        roster.epoch += 1
        rosters[spec.taskID] = roster
        let rank = roster.rank(of: spec.id) ?? 0
        return (
            view(of: entry),
            [
                .persist(MembershipChange(upserted: [entry.record], epochs: [spec.taskID: roster.epoch])),
                .membershipChanged(
                    spec.taskID, members: roster.members.filter { $0 != spec.id }, epoch: departed,
                    cause: .restartedOldProcessLeft(spec.id)),
                .membershipChanged(
                    spec.taskID, members: roster.members, epoch: roster.epoch,
                    cause: .restartedNewProcessJoined(spec.id, rank: rank)),
                .log(.restarted(spec.id, spec.taskID, epoch: roster.epoch)),
            ]
        )
    }

    /// A heartbeat. Members are marked healthy and their progress is recorded; a worker that is no longer a member
    /// is told to rejoin. Soft state only: never produces a `persist`.
    ///
    /// `metrics` replaces the previous metrics unless it is empty (an empty map means "nothing new"). `arrivedAt` is
    /// when the heartbeat reached the coordinator (monotonic; `now` when not given): the worker is judged by when it
    /// spoke, not by when the coordinator got round to the message.
    /// - Throws: `notFound` when the coordinator does not know the worker.
    public mutating func onHeartbeat(
        _ id: WorkerID, step: Int64, metrics: [String: Double], arrivedAt: Duration? = nil, now: Moment
    ) throws(CoreError) -> (view: MembershipView, directives: [Directive]) {
        let suspectAfter = config.suspectAfter
        // In place (the hot path): the entry is not copied out and back.
        let updated = entries.update(id) { entry in
            guard entry.isMember else { return (entry.record.spec.taskID, entry.health, nil as [Directive]?) }
            let directives = Self.refresh(
                &entry, at: arrivedAt ?? now.monotonic, now: now, suspectAfter: suspectAfter)
            entry.step = step
            if !metrics.isEmpty { entry.metrics = metrics }
            return (entry.record.spec.taskID, entry.health, directives)
        }
        guard let (task, health, directives) = updated else { throw Self.unknown(id) }
        guard let directives else { return (view(id, of: task, isMember: false, health: health), []) }
        heard(id)
        return (view(id, of: task, isMember: true, health: health), directives)
    }

    /// A worker leaves (gracefully, or saying it `failed`): its rank is released now and the epoch bumps. Leaving
    /// twice is a no-op.
    ///
    /// - Returns: the task's membership epoch after the leave.
    /// - Throws: `notFound` when the coordinator does not know the worker.
    public mutating func onDeregister(_ id: WorkerID, failed: Bool = false, now: Moment) throws(CoreError) -> (
        epoch: UInt64, directives: [Directive]
    ) {
        guard var entry = entries[id] else { throw Self.unknown(id) }
        let task = entry.record.spec.taskID
        guard entry.isMember else { return (rosters[task]?.epoch ?? 0, []) }
        depart(&entry, as: .left, now: now)
        entries[id] = entry
        let epoch = removeMembers([id], from: task)
        return (
            epoch,
            [
                .persist(MembershipChange(upserted: [entry.record], epochs: [task: epoch])),
                .membershipChanged(task, members: members(of: task), epoch: epoch, cause: .left(id, failed: failed)),
                .log(.left(id, task, epoch: epoch, failed: failed)),
            ]
        )
    }

    // MARK: Worker secrets

    /// Checks that a call naming `id` carries the secret (`presented`, its digest) of the worker's current
    /// incarnation: the one rule for every call that acts as a worker (heartbeats and sessions, data, barriers,
    /// checkpoints, deregistration). A worker whose record predates secrets (nil digest) is accepted until it registers
    /// again.
    ///
    /// - Throws: `UNKNOWN_WORKER` (not_found) for a worker the coordinator does not know (register it), or
    ///   `permissionDenied` with reason `WORKER_SECRET_WRONG` for a missing or wrong secret.
    public func authenticate(_ id: WorkerID, presented: SecretDigest?) throws(CoreError) {
        guard let entry = entries[id] else { throw Self.unknown(id) }
        guard let expected = entry.record.secretDigest else { return }
        guard let presented, presented.matches(expected) else {
            throw CoreError(
                .permissionDenied,
                "worker \(id) needs its worker secret (the one its RegisterWorker reply gave, in the dtr-worker-secret "
                    + "metadata): \(presented == nil ? "this call carries none" : "this call carries another one"). "
                    + "Make the call from the process that registered the worker (the Python SDK does this "
                    + "automatically), or register a worker of your own",
                reason: .workerSecretWrong)
        }
    }

    /// Whether registering a live member's id may go on, and whether the caller proved to be that worker: with its
    /// secret (the same worker registering again, or a restart that proves itself), or when its record predates
    /// secrets (proven); or without, once the member has been silent for the suspect timeout (not proven: a crashed
    /// process's restart takes its place, as it did before secrets, but nobody can take over a worker that heartbeats).
    ///
    /// - Throws: `WORKER_ID_IN_USE` for a member heard from within the suspect timeout, without its secret.
    private static func claim(_ entry: Entry, presented: SecretDigest?, config: MembershipConfig, now: Moment)
        throws(CoreError) -> Bool
    {
        guard let expected = entry.record.secretDigest else { return true }
        if let presented, presented.matches(expected) { return true }
        let silent = now.monotonic - entry.lastSeen
        if silent >= config.suspectAfter { return false }
        let id = entry.record.spec.id
        let wait = config.suspectAfter - silent
        throw CoreError(
            .permissionDenied,
            "worker_id \(id) is a live member of task \(entry.record.spec.taskID), registered by another process "
                + "that heartbeats: register it again with its worker secret (dtr-worker-secret); if that process is "
                + "gone, its id can be taken once it has been silent for \(config.suspectAfter) (in \(wait) at the "
                + "earliest); or use another worker_id",
            reason: .workerIdInUse, details: ErrorDetails(retryAfter: wait))
    }

    // MARK: Views and queries

    /// The view a worker would get in a heartbeat reply now, or nil for an unknown worker.
    public func view(of id: WorkerID, reason: String = "") -> MembershipView? {
        entries[id].map { view(of: $0, reason: reason) }
    }

    /// A member of its task, as the calls of a member (data, checkpoints, barriers) see it, with the epoch it sent
    /// checked by `rule` (see ``MembershipFence``).
    ///
    /// - Parameter advice: what to do about a stale epoch, for the message.
    /// - Throws: `UNKNOWN_WORKER` (not_found), `NOT_A_MEMBER` (failed_precondition), or what
    ///   ``MembershipFence/check(_:current:task:rule:advice:)`` throws.
    public func member(
        _ id: WorkerID, seenEpoch: UInt64? = nil, rule: MembershipFence.Rule = .notAhead, advice: String = ""
    ) throws(CoreError) -> Member {
        guard let entry = entries[id] else { throw Self.unknown(id) }
        let task = entry.record.spec.taskID
        guard let roster = rosters[task], let rank = roster.rank(of: id) else {
            throw MembershipFence.notAMember(id, task: task)
        }
        if let seenEpoch {
            try MembershipFence.check(seenEpoch, current: roster.epoch, task: task, rule: rule, advice: advice)
        }
        return Member(id: id, task: task, rank: rank, worldSize: roster.worldSize, epoch: roster.epoch)
    }

    /// How many workers are known (members, and dead or departed ones still retained).
    public var workerCount: Int { entries.count }

    /// The task a known worker belongs (or belonged) to.
    public func task(of id: WorkerID) -> TaskID? { entries[id]?.record.spec.taskID }

    /// The digest of a known worker's secret (nil: unknown worker, or a record from before secrets).
    public func secretDigest(of id: WorkerID) -> SecretDigest? { entries[id]?.record.secretDigest }

    /// A task's membership epoch (0 for a task nobody joined).
    public func epoch(of task: TaskID) -> UInt64 { rosters[task]?.epoch ?? 0 }

    /// Whether `id` is a current member of `task` (O(1), unlike searching ``members(of:)``).
    public func isMember(_ id: WorkerID, of task: TaskID) -> Bool { rosters[task]?.contains(id) ?? false }

    /// Current members of a task, in rank order.
    public func members(of task: TaskID) -> [WorkerID] { rosters[task]?.members ?? [] }

    /// Every task that has had members, with its epoch and world size, sorted by id.
    public func tasks() -> [TaskSummary] {
        rosters.map { TaskSummary(taskID: $0.key, epoch: $0.value.epoch, worldSize: $0.value.worldSize) }
            .sorted { $0.taskID < $1.taskID }
    }

    /// Every known worker (members, dead and departed ones still retained), sorted by task, then rank (members
    /// first), then id.
    public func workers(now: Moment) -> [WorkerSnapshot] {
        entries.values.map { entry in
            let id = entry.record.spec.id
            return WorkerSnapshot(
                record: entry.record, health: entry.health,
                rank: rosters[entry.record.spec.taskID]?.rank(of: id),
                lastHeartbeatAge: now.monotonic - entry.lastSeen, step: entry.step, metrics: entry.metrics)
        }
        .sorted { a, b in
            if a.record.spec.taskID != b.record.spec.taskID { return a.record.spec.taskID < b.record.spec.taskID }
            switch (a.rank, b.rank) {
            case (let x?, let y?): return x < y
            case (.some, nil): return true
            case (nil, .some): return false
            case (nil, nil): return a.record.spec.id < b.record.spec.id
            }
        }
    }

    /// How many known workers are in each health state.
    public func healthCounts() -> [WorkerHealth: Int] {
        var counts = Dictionary(uniqueKeysWithValues: WorkerHealth.allCases.map { ($0, 0) })
        for entry in entries.values { counts[entry.health, default: 0] += 1 }
        return counts
    }

    // MARK: Internals shared with the failure detector

    /// The error for a worker the coordinator does not know.
    public static func unknown(_ id: WorkerID) -> CoreError {
        CoreError(
            .notFound,
            "worker \(id) is not registered with this coordinator: call RegisterWorker again "
                + "(the Python SDK does this automatically)",
            reason: .unknownWorker)
    }

    func view(of entry: Entry, reason: String = "") -> MembershipView {
        view(
            entry.record.spec.id, of: entry.record.spec.taskID, isMember: entry.isMember, health: entry.health,
            reason: reason)
    }

    /// The view of worker `id` of `task`, from its entry's standing and health.
    func view(_ id: WorkerID, of task: TaskID, isMember: Bool, health: WorkerHealth, reason: String = "")
        -> MembershipView
    {
        let roster = rosters[task]
        return MembershipView(
            taskID: task, rank: roster?.rank(of: id), worldSize: roster?.worldSize ?? 0, epoch: roster?.epoch ?? 0,
            command: isMember ? .proceed : .rejoin, health: health, reason: reason)
    }

    /// A sign of life from a worker at `moment` (monotonic): a member's silence is measured from it (a later sign
    /// of life already recorded stays), and a suspect member is healthy again. Anything else is ignored: a departed or
    /// unknown worker is not brought back by this. Heartbeats come here from the liveness board, where they are
    /// recorded as they arrive, at the failure detector's next run (``onTick(now:arrivals:lag:)``); a registration
    /// comes the moment it is answered (the worker cannot heartbeat before).
    public mutating func onSignOfLife(_ id: WorkerID, at moment: Duration, now: Moment) -> [Directive] {
        let suspectAfter = config.suspectAfter
        // In place: the failure detector calls this for every worker heard since its last run.
        let refreshed = entries.update(id) { entry in
            entry.isMember ? Self.refresh(&entry, at: moment, now: now, suspectAfter: suspectAfter) : nil
        }
        guard let directives = refreshed ?? nil else { return [] }
        heard(id)
        return directives
    }

    /// A sign of life from a member: fresh timeout (never moved back), healthy again unless the sign is itself
    /// older than the suspect timeout (a heartbeat that waited in a queue proves nothing about now). The caller
    /// also calls ``heard(_:)``.
    private static func refresh(_ entry: inout Entry, at moment: Duration, now: Moment, suspectAfter: Duration)
        -> [Directive]
    {
        entry.lastSeen = max(entry.lastSeen, moment)
        guard entry.health == .suspect, now.monotonic - entry.lastSeen < suspectAfter else { return [] }
        entry.health = .healthy
        return [.log(.recovered(entry.record.spec.id, entry.record.spec.taskID))]
    }

    /// A member was heard from: it is no longer among those unheard since the restart.
    private mutating func heard(_ id: WorkerID) {
        if !restoredUnheard.isEmpty { restoredUnheard.remove(id) }
    }

    /// Marks a member as no longer one (dead or left).
    func depart(_ entry: inout Entry, as standing: Standing, now: Moment) {
        entry.record.standing = standing
        entry.record.departedAtMillis = now.unixMillis
        entry.departedAt = now.monotonic
        entry.health = standing == .dead ? .dead : .left
    }

    /// Removes members from a task, re-densifies ranks and bumps the epoch once. Returns the new epoch.
    mutating func removeMembers(_ ids: Set<WorkerID>, from task: TaskID) -> UInt64 {
        modifyRoster(of: task) { roster in
            roster.remove(ids)
            roster.epoch += 1
            return roster.epoch
        }
    }

    /// Changes a task's roster where it is stored (created empty if the task has none), returning what `body` does.
    private mutating func modifyRoster<Result>(of task: TaskID, _ body: (inout TaskRoster) -> Result) -> Result {
        body(&rosters[task, default: TaskRoster()])
    }
}

/// A member of a task, as the calls only members may make see it.
public struct Member: Sendable, Hashable {
    /// The worker.
    public var id: WorkerID
    /// Its task.
    public var task: TaskID
    /// Its rank in the task.
    public var rank: Int
    /// The task's number of members.
    public var worldSize: Int
    /// The task's membership epoch.
    public var epoch: UInt64
}

/// One task's membership at a glance.
public struct TaskSummary: Sendable, Hashable {
    /// The task.
    public var taskID: TaskID
    /// Its membership epoch.
    public var epoch: UInt64
    /// Its number of members.
    public var worldSize: Int
}

/// One known worker as the HTTP API shows it.
public struct WorkerSnapshot: Sendable, Hashable {
    /// The durable record.
    public var record: WorkerRecord
    /// Health as the failure detector sees it.
    public var health: WorkerHealth
    /// Rank, when a member.
    public var rank: Int?
    /// Time since the last heartbeat (or registration).
    public var lastHeartbeatAge: Duration
    /// The last step it reported.
    public var step: Int64
    /// The last metrics it reported.
    public var metrics: [String: Double]
}

public import RuntimeCore

/// Every checkpoint of every task and the two-phase commit that makes them whole: a pure state machine.
///
/// Phase one: each rank of a task opens (joins) the checkpoint of a step and is told its part's key. Phase two: each
/// rank writes its part and reports size and sha256. Once every rank reported, the catalog asks the shell to write the
/// manifest (``Directive/commit(_:)``); only when the shell confirms it is durable (``committed(_:atMs:)``) does the
/// checkpoint become visible. A failed part, a departed participant or the deadline aborts it instead, and its objects
/// are deleted. Committing applies the retention policy to the task.
///
/// Memory is bounded per task: at most ``maxPendingPerTask`` checkpoints pending at once (opening another is refused),
/// and at most ``retiredKeptPerTask`` aborted or retired records, without their metadata; older ones are forgotten.
///
/// Time comes in as `now` (a monotonic instant) and `wallMs` (Unix milliseconds, for records); nothing here sleeps,
/// reads a clock or touches storage.
public struct CheckpointCatalog: Sendable {
    /// What the shell must do, in order.
    public enum Directive: Sendable, Hashable {
        /// Persist the record (durably, before any reply about it leaves).
        case persist(CheckpointRecord)
        /// Every part is reported: write the manifest, then call ``committed(_:atMs:)`` (or ``commitFailed(_:reason:)``).
        case commit(CheckpointRecord)
        /// The checkpoint reached a final state (committed or aborted): answer the reports waiting for it.
        case settled(CheckpointRecord)
        /// Delete the checkpoint's objects from the store, once the status change that retired it is durable (best
        /// effort: the periodic sweep retries what fails).
        case deleteObjects(CheckpointID, [ObjectKey])
        /// Delete the record: a retired one (aborted, or deleted by retention) beyond what a task keeps. Its objects
        /// were deleted when it was retired.
        case forget(CheckpointID)
    }

    /// What a rank asks when it opens a checkpoint.
    public struct Opening: Sendable, Hashable {
        /// The rank's task.
        public var task: TaskID
        /// The training step.
        public var step: Int64
        /// The training epoch.
        public var epoch: Int64
        /// The rank's worker.
        public var worker: WorkerID
        /// The rank.
        public var rank: Int
        /// The task's world size now.
        public var worldSize: Int
        /// The task's membership epoch now.
        public var membershipEpoch: UInt64
        /// The rank's metrics.
        public var metrics: [String: Double]
        /// The rank's metadata.
        public var metadata: [String: String]

        /// Creates an opening.
        public init(
            task: TaskID, step: Int64, epoch: Int64, worker: WorkerID, rank: Int, worldSize: Int,
            membershipEpoch: UInt64, metrics: [String: Double] = [:], metadata: [String: String] = [:]
        ) {
            self.task = task
            self.step = step
            self.epoch = epoch
            self.worker = worker
            self.rank = rank
            self.worldSize = worldSize
            self.membershipEpoch = membershipEpoch
            self.metrics = metrics
            self.metadata = metadata
        }
    }

    private struct StepKey: Hashable {
        var task: TaskID
        var step: Int64
    }

    /// How long a checkpoint may stay pending before it is aborted.
    public let timeout: Duration
    /// Which committed checkpoints to keep.
    public let retention: RetentionPolicy
    /// How many checkpoints of one task may be pending at once.
    public let maxPendingPerTask: Int
    /// How many aborted and retired records of one task are kept (for the API's history); older ones are forgotten.
    public static let retiredKeptPerTask = 64

    private var records: [CheckpointID: CheckpointRecord] = [:]
    private var pending: [StepKey: CheckpointID] = [:]
    private var deadlines: [CheckpointID: Duration] = [:]
    private var committing: Set<CheckpointID> = []
    private var attempts: [StepKey: Int] = [:]
    /// Per task: how many checkpoints are pending, and its aborted and retired records, oldest first.
    private var pendingCount: [TaskID: Int] = [:]
    private var retired: [TaskID: [CheckpointID]] = [:]

    /// Creates a catalog, restoring persisted records. Pending checkpoints get a full timeout from `now`: their
    /// ranks may still be writing, and a restarted coordinator must not abort them for the time it was down.
    public init(
        timeout: Duration, retention: RetentionPolicy, maxPendingPerTask: Int = 16,
        restoring restored: [CheckpointRecord] = [], now: Duration
    ) {
        self.timeout = timeout
        self.retention = retention
        self.maxPendingPerTask = max(1, maxPendingPerTask)
        for record in restored.sorted(by: { ($0.createdAtMs, $0.id) < ($1.createdAtMs, $1.id) }) {
            records[record.id] = record
            let key = StepKey(task: record.id.task, step: record.id.step)
            attempts[key] = max(attempts[key] ?? 0, record.id.attempt)
            switch record.status {
            case .pending:
                pending[key] = record.id
                pendingCount[key.task, default: 0] += 1
                deadlines[record.id] = now + timeout
            case .aborted, .deleted:
                retired[key.task, default: []].append(record.id)
            case .committed:
                break
            }
        }
    }

    // MARK: queries

    /// A record by id.
    public func record(_ id: CheckpointID) -> CheckpointRecord? { records[id] }

    /// Every record, in id order.
    public var all: [CheckpointRecord] { records.values.sorted { $0.id < $1.id } }

    /// The pending checkpoint of a step, if one is open.
    public func pendingCheckpoint(task: TaskID, step: Int64) -> CheckpointID? {
        pending[StepKey(task: task, step: step)]
    }

    /// A task's committed checkpoint of a step, or its latest committed one when `step` is nil. "Latest" is by
    /// commit order, not by step: a job that rolled back to an earlier checkpoint and saved again resumes from what it
    /// saved last, not from the abandoned run's higher steps.
    public func committed(task: TaskID, step: Int64? = nil) -> CheckpointRecord? {
        records.values.filter { $0.id.task == task && $0.status == .committed && (step == nil || $0.id.step == step) }
            .max(by: Self.commitOrder)
    }

    /// Orders committed records by commit time, then id.
    static func commitOrder(_ a: CheckpointRecord, _ b: CheckpointRecord) -> Bool {
        (a.committedAtMs ?? 0, a.id) < (b.committedAtMs ?? 0, b.id)
    }

    /// Records (pending ones) that are waiting for the shell to finish writing their manifest.
    public var committingIDs: Set<CheckpointID> { committing }

    /// The key `worker` must write its part of checkpoint `id` to.
    public func partKey(of worker: WorkerID, in id: CheckpointID) throws(CheckpointError) -> ObjectKey {
        let record = try reportable(id, worker: worker)
        return id.partKey(rank: try rank(of: worker, in: record))
    }

    /// After a restart: pending checkpoints whose every part was reported before the crash commit now (their manifest
    /// may or may not have been written; writing it again is harmless), and retired records beyond what a task keeps
    /// (written by a version that kept them all) are forgotten.
    public mutating func resumeCommits() -> [Directive] {
        var directives: [Directive] = []
        for id in pending.values.sorted() where !committing.contains(id) {
            guard let record = records[id], record.parts.count == record.worldSize else { continue }
            committing.insert(id)
            directives.append(.commit(record))
        }
        for task in retired.keys.sorted() { directives += forgetRetired(of: task) }
        return directives
    }

    /// When a pending checkpoint will be aborted if parts are still missing.
    public func deadline(of id: CheckpointID) -> Duration? { deadlines[id] }

    // MARK: phase one

    /// A rank opens the checkpoint of a step (creating it if no attempt is pending) and learns its part's key.
    /// Opening again is idempotent. `position` is the data position to record: the whole task's when this opening
    /// creates the checkpoint, this rank's own shards otherwise (see ``DataPosition/overlaid(with:)``).
    public mutating func open(_ opening: Opening, position: DataPosition, now: Duration, wallMs: Int64)
        throws(CheckpointError) -> (record: CheckpointRecord, directives: [Directive])
    {
        let key = StepKey(task: opening.task, step: opening.step)
        guard let id = pending[key] else {
            let open = pendingCount[opening.task] ?? 0
            guard open < maxPendingPerTask else {
                let steps = pending.keys.filter { $0.task == opening.task }.map(\.step).sorted()
                throw CheckpointError(
                    .resourceExhausted,
                    "task \(opening.task) already has \(open) checkpoints pending (steps "
                        + "\(steps.map(String.init).joined(separator: ", "))), the most it may: one stops being pending "
                        + "when every rank reported its part, one fails, or it times out (after \(timeout)); save "
                        + "less often, wait for them, or raise --checkpoint-max-pending")
            }
            // A step committed before is saved again as a new attempt: a job that rolled back to an earlier
            // checkpoint reaches the same steps again. Loads see the newest commit.
            let attempt = (attempts[key] ?? 0) + 1
            attempts[key] = attempt
            let id = CheckpointID(task: opening.task, step: opening.step, attempt: attempt)
            var record = CheckpointRecord(
                id: id, epoch: opening.epoch, worldSize: opening.worldSize,
                membershipEpoch: opening.membershipEpoch, createdAtMs: wallMs, position: position)
            record.join(opening)
            records[id] = record
            pending[key] = id
            pendingCount[opening.task] = open + 1
            deadlines[id] = now + timeout
            return (record, [.persist(record)])
        }
        var record = records[id]!
        if let existing = record.opened[opening.rank] {
            guard existing == opening.worker.rawValue else {
                throw CheckpointError(
                    .failedPrecondition,
                    "rank \(opening.rank) of checkpoint \(id) was opened by worker \(existing), not "
                        + "\(opening.worker)")
            }
            return (record, [])
        }
        guard opening.rank < record.worldSize else {
            throw CheckpointError(
                .failedPrecondition,
                "checkpoint \(id) was opened for world size \(record.worldSize) (membership epoch "
                    + "\(record.membershipEpoch)); rank \(opening.rank) joined later and is not part of it: "
                    + "save the next step")
        }
        guard opening.epoch == record.epoch else {
            throw CheckpointError(
                .invalidArgument,
                "epoch must be the same on every rank saving step \(opening.step): checkpoint \(id) was opened at "
                    + "epoch \(record.epoch) (got \(opening.epoch))")
        }
        record.join(opening)
        record.position = record.position.overlaid(with: position)
        records[id] = record
        return (record, [.persist(record)])
    }

    // MARK: phase two

    /// A rank reports its written part. The last report asks the shell to commit. A duplicate of the same report is
    /// idempotent; a different report for a rank that already reported is refused.
    public mutating func report(_ id: CheckpointID, worker: WorkerID, part: CheckpointRecord.Part)
        throws(CheckpointError) -> (record: CheckpointRecord, directives: [Directive])
    {
        var record = try reportable(id, worker: worker)
        let rank = try rank(of: worker, in: record)
        if let earlier = record.parts[rank] {
            guard earlier.sizeBytes == part.sizeBytes, earlier.sha256 == part.sha256 else {
                throw CheckpointError(
                    .failedPrecondition,
                    "\(record.describe(rank: rank)) already reported \(earlier.sizeBytes) bytes with sha256 "
                        + "\(earlier.sha256) for checkpoint \(id); a part cannot change once reported")
            }
            return (record, [])
        }
        guard record.status == .pending else {
            throw CheckpointError(.failedPrecondition, "checkpoint \(id) is \(record.status.rawValue)")
        }
        record.parts[rank] = part
        records[id] = record
        var directives: [Directive] = [.persist(record)]
        if record.parts.count == record.worldSize {
            committing.insert(id)
            directives.append(.commit(record))
        }
        return (record, directives)
    }

    /// A rank could not write its part: the checkpoint is aborted at once, naming the rank and its reason.
    public mutating func fail(_ id: CheckpointID, worker: WorkerID, reason: String) throws(CheckpointError)
        -> (record: CheckpointRecord, directives: [Directive])
    {
        let record = try reportable(id, worker: worker)
        let rank = try rank(of: worker, in: record)
        guard record.status == .pending, !committing.contains(id) else {
            throw CheckpointError(.failedPrecondition, "checkpoint \(id) is \(record.status.rawValue)")
        }
        let directives = abort(id, reason: "\(record.describe(rank: rank)) could not write its part: \(reason)")
        return (records[id]!, directives)
    }

    // MARK: commit

    /// The shell wrote the manifest durably: the checkpoint is committed, and the task's retention applied.
    public mutating func committed(_ id: CheckpointID, atMs wallMs: Int64) -> [Directive] {
        guard committing.remove(id) != nil, var record = records[id], record.status == .pending else { return [] }
        record.status = .committed
        record.committedAtMs = wallMs
        records[id] = record
        unpend(id)
        var directives: [Directive] = [.persist(record), .settled(record)]
        let candidates = records.values.filter { $0.id.task == id.task && $0.status == .committed }
            .sorted(by: Self.commitOrder)
            .map { RetentionPolicy.Candidate(id: $0.id, metrics: $0.metrics) }
        for expired in retention.expired(candidates) where expired != id {
            var old = records[expired]!
            old.status = .deleted
            old.retire()
            records[expired] = old
            retired[id.task, default: []].append(expired)
            directives += [.persist(old), .deleteObjects(old.id, old.objectKeys)]
        }
        return directives + forgetRetired(of: id.task)
    }

    /// The shell could not write the manifest: the checkpoint is aborted.
    public mutating func commitFailed(_ id: CheckpointID, reason: String) -> [Directive] {
        guard committing.remove(id) != nil else { return [] }
        return abort(id, reason: "writing the manifest failed: \(reason)")
    }

    // MARK: failures

    /// Aborts every pending checkpoint whose deadline passed, naming the ranks that did not report.
    public mutating func onTick(now: Duration) -> [Directive] {
        var directives: [Directive] = []
        for (id, deadline) in deadlines.sorted(by: { $0.key < $1.key })
        where deadline <= now && !committing.contains(id) {
            let record = records[id]!
            let missing = record.missingRanks.map(record.describe(rank:)).joined(separator: ", ")
            directives += abort(id, reason: "timed out after \(timeout) waiting for the parts of \(missing)")
        }
        return directives
    }

    /// The task's membership changed. A pending checkpoint survives a join (ranks keep their numbers), but not the
    /// departure of one of its ranks: ranks re-densify, so its parts could no longer be matched to the ranks that
    /// wrote them. Such checkpoints are aborted, naming who is gone.
    public mutating func onMembershipChange(task: TaskID, members: [WorkerID], reason: String) -> [Directive] {
        var directives: [Directive] = []
        for (key, id) in pending.sorted(by: { $0.value < $1.value }) where key.task == task && !committing.contains(id)
        {
            let record = records[id]!
            let moved = (0..<record.worldSize).filter { rank in
                let now = rank < members.count ? members[rank].rawValue : nil
                return now == nil || record.opened[rank].map { $0 != now } ?? false
            }
            guard !moved.isEmpty else { continue }
            let ranks = moved.map(record.describe(rank:)).joined(separator: ", ")
            directives += abort(
                id,
                reason: "the membership changed before the checkpoint was whole (\(reason)); "
                    + "ranks no longer held as opened: \(ranks)")
        }
        return directives
    }

    // MARK: private

    private mutating func abort(_ id: CheckpointID, reason: String) -> [Directive] {
        guard var record = records[id], record.status == .pending else { return [] }
        record.status = .aborted
        record.abortReason = reason
        record.retire()
        records[id] = record
        unpend(id)
        committing.remove(id)
        retired[id.task, default: []].append(id)
        return [.persist(record), .settled(record), .deleteObjects(record.id, record.objectKeys)]
            + forgetRetired(of: id.task)
    }

    /// `id` is no longer pending.
    private mutating func unpend(_ id: CheckpointID) {
        guard pending.removeValue(forKey: StepKey(task: id.task, step: id.step)) != nil else { return }
        deadlines[id] = nil
        let left = (pendingCount[id.task] ?? 1) - 1
        pendingCount[id.task] = left > 0 ? left : nil
    }

    /// Forgets the task's oldest retired records beyond ``retiredKeptPerTask``. Their objects were deleted when they
    /// were retired; deleting them once more catches a part that a slow writer finished since.
    private mutating func forgetRetired(of task: TaskID) -> [Directive] {
        guard let ids = retired[task], ids.count > Self.retiredKeptPerTask else { return [] }
        let forgotten = ids.prefix(ids.count - Self.retiredKeptPerTask)
        retired[task] = Array(ids.suffix(Self.retiredKeptPerTask))
        return forgotten.flatMap { id -> [Directive] in
            let keys = records.removeValue(forKey: id)?.objectKeys ?? []
            // A step none of whose attempts is left may number its next attempt from 1 again: those objects are gone.
            let key = StepKey(task: id.task, step: id.step)
            let attempts = self.attempts[key] ?? 0
            if !(1...max(1, attempts)).contains(where: {
                records[CheckpointID(task: id.task, step: id.step, attempt: $0)] != nil
            }) {
                self.attempts[key] = nil
            }
            return [.deleteObjects(id, keys), .forget(id)]
        }
    }

    private func reportable(_ id: CheckpointID, worker: WorkerID) throws(CheckpointError) -> CheckpointRecord {
        guard let record = records[id] else {
            throw CheckpointError(.notFound, "no checkpoint \(id): open it with SaveCheckpoint first")
        }
        switch record.status {
        case .aborted:
            throw CheckpointError(
                .failedPrecondition,
                "checkpoint \(id) was aborted (\(record.abortReason ?? "no reason recorded")): save the step again")
        case .deleted:
            throw CheckpointError(.failedPrecondition, "checkpoint \(id) was deleted by retention")
        case .pending, .committed:
            return record
        }
    }

    private func rank(of worker: WorkerID, in record: CheckpointRecord) throws(CheckpointError) -> Int {
        guard let rank = record.opened.first(where: { $0.value == worker.rawValue })?.key else {
            throw CheckpointError(
                .failedPrecondition,
                "worker \(worker) has not opened checkpoint \(record.id): call SaveCheckpoint for step "
                    + "\(record.id.step) first")
        }
        return rank
    }
}

extension CheckpointRecord {
    /// Drops what only a live or committed checkpoint needs: the metadata and per-rank metrics its ranks sent.
    fileprivate mutating func retire() {
        metadata = [:]
        rankMetrics = [:]
    }

    fileprivate mutating func join(_ opening: CheckpointCatalog.Opening) {
        opened[opening.rank] = opening.worker.rawValue
        if !opening.metrics.isEmpty { rankMetrics[opening.rank] = opening.metrics }
        let lowest = opened.keys.min() == opening.rank
        metadata.merge(opening.metadata) { current, new in lowest ? new : current }
    }
}

/// A training job as the coordinator tracks it: created through the HTTP API (or implicitly, by the first worker that
/// joins it), watched, and stopped.
public struct TaskRecord: Sendable, Hashable, Codable {
    /// Where a task is in its life.
    public enum Status: String, Sendable, Hashable, Codable, CaseIterable {
        /// Created; no worker has joined yet.
        case pending
        /// At least one worker joined and the task was not stopped.
        case running
        /// A stop was requested: every worker is told STOP and the task waits for them to leave.
        case stopping
        /// Stopped: the last worker left after the stop.
        case stopped
        /// Every worker left gracefully without a stop: the job finished.
        case completed
        /// The last worker died or left saying it failed: nobody is left to finish.
        case failed

        /// Whether the task has ended (workers joining again run it again).
        public var isTerminal: Bool { self == .stopped || self == .completed || self == .failed }
    }

    /// The task's id, which workers name at registration.
    public var id: String
    /// Members the job is meant to have, at most (0: not said): the coordinator admits no more.
    public var worldSize: Int
    /// Members the job needs to start and to keep going (nil or 0: the same as ``worldSize``). Optional because
    /// records written before it existed do not have it.
    public var minWorldSize: Int?
    /// The dataset the job trains on, if said.
    public var dataset: String?
    /// Epochs the job means to run, if said.
    public var epochs: Int?
    /// The job's configuration as a JSON object (opaque to the coordinator).
    public var configJSON: String
    /// Current status.
    public var status: Status
    /// Whether it was created through the API (false: a worker named it first).
    public var explicit: Bool
    /// Unix milliseconds of creation.
    public var createdAtMs: Int64
    /// When the first worker joined.
    public var startedAtMs: Int64?
    /// When it reached its current terminal status (nil while it has not ended, stopping included).
    public var endedAtMs: Int64?
    /// Why it is stopping, stopped, completed or failed.
    public var reason: String?

    /// The task's id as a ``TaskID``.
    public var taskID: TaskID { TaskID(unchecked: id) }

    /// The fewest members the job trains with (``minWorldSize``, else ``worldSize``; 0: not said).
    public var effectiveMinWorldSize: Int {
        guard let minWorldSize, minWorldSize > 0 else { return worldSize }
        return minWorldSize
    }
}

/// What the API asks for when it creates a task.
public struct TaskSpec: Sendable, Hashable {
    /// The id (1-64 of `[A-Za-z0-9._-]`).
    public var id: TaskID
    /// Intended (largest) world size, 0-65536 (0: not said).
    public var worldSize: Int
    /// Smallest world size the job trains with, 0-`worldSize` (0: the same as `worldSize`).
    public var minWorldSize: Int
    /// Dataset name, if any.
    public var dataset: String?
    /// Epochs, if any (1-1000000).
    public var epochs: Int?
    /// Configuration JSON object, at most 64 KiB.
    public var configJSON: String

    /// Validates a spec.
    public init(
        id: TaskID, worldSize: Int, minWorldSize: Int = 0, dataset: String?, epochs: Int?, configJSON: String
    ) throws(CoreError) {
        guard (0...65_536).contains(worldSize) else {
            throw .invalid("world_size", "must be between 0 (not said) and 65536", got: String(worldSize))
        }
        guard (0...65_536).contains(minWorldSize) else {
            throw .invalid(
                "min_world_size", "must be between 0 (the same as world_size) and 65536", got: String(minWorldSize))
        }
        // Each field is valid on its own; together they contradict each other (a conflict, not a malformed field).
        guard minWorldSize <= worldSize else {
            throw CoreError(
                .failedPrecondition,
                "min_world_size (\(minWorldSize)) is larger than world_size (\(worldSize)): the job would wait for more "
                    + "workers than it admits; lower min_world_size or raise world_size")
        }
        if let dataset { _ = try Validation.name(dataset, field: "dataset") }
        if let epochs, !(1...1_000_000).contains(epochs) {
            throw .invalid("epochs", "must be between 1 and 1000000", got: String(epochs))
        }
        guard configJSON.utf8.count <= 64 << 10 else {
            throw .invalid("config", "must be at most 64 KiB of JSON", got: "\(configJSON.utf8.count) bytes")
        }
        self.id = id
        self.worldSize = worldSize
        self.minWorldSize = minWorldSize
        self.dataset = dataset
        self.epochs = epochs
        self.configJSON = configJSON
    }
}

/// Every task and its lifecycle: a pure state machine fed by the API (create, stop) and by the membership's changes
/// (joins, leaves, deaths). Like ``Membership``, each event takes the current ``Moment`` and returns directives for the
/// shell.
public struct TaskTable: Sendable {
    /// What the shell must do after an event.
    public enum Directive: Sendable, Hashable {
        /// Write the record (one row per task). Views of the task wait until it is durable.
        case persist(TaskRecord)
        /// Push the task's current views to its members now, with this reason (they carry STOP once it is stopping).
        case push(TaskID, reason: String)
        /// The task ended (stopped, completed, failed): worth a log line.
        case ended(TaskRecord)
    }

    /// Most tasks kept; creating more is refused (ended ones can be forgotten first).
    public static let maxTasks = 10_000

    private var records: [String: TaskRecord] = [:]

    /// Creates a table from persisted records.
    public init(restoring restored: [TaskRecord] = []) {
        for record in restored { records[record.id] = record }
    }

    /// A record by id.
    public func record(_ id: TaskID) -> TaskRecord? { records[id.rawValue] }

    /// Every task, oldest first.
    public var all: [TaskRecord] { records.values.sorted { ($0.createdAtMs, $0.id) < ($1.createdAtMs, $1.id) } }

    /// Whether workers of the task must be told to stop.
    public func isStopping(_ id: TaskID) -> Bool { records[id.rawValue]?.status == .stopping }

    // MARK: Events

    /// Creates a task through the API. An id a worker already used (an implicit task) is taken over if that task has
    /// not ended; the id of a task that ended starts a new run of it (a job run again under its name); any other
    /// existing id is `alreadyExists`.
    ///
    /// - Throws: `alreadyExists`; `LIMIT_REACHED` (resource_exhausted) beyond ``maxTasks``.
    public mutating func create(_ spec: TaskSpec, now: Moment) throws(CoreError) -> (
        record: TaskRecord, directives: [Directive]
    ) {
        if var existing = records[spec.id.rawValue], !existing.status.isTerminal {
            guard !existing.explicit else {
                throw CoreError(
                    .alreadyExists,
                    "task \(spec.id) already exists (\(existing.status.rawValue)): stop it first "
                        + "(POST /api/tasks/\(spec.id)/stop) or choose another name")
            }
            existing.explicit = true
            existing.worldSize = spec.worldSize
            existing.minWorldSize = spec.minWorldSize
            existing.dataset = spec.dataset
            existing.epochs = spec.epochs
            existing.configJSON = spec.configJSON
            records[existing.id] = existing
            return (existing, [.persist(existing)])
        }
        guard records[spec.id.rawValue] != nil || records.count < Self.maxTasks else {
            throw CoreError(
                .resourceExhausted, "at most \(Self.maxTasks) tasks: this coordinator is full", reason: .limitReached)
        }
        let record = TaskRecord(
            id: spec.id.rawValue, worldSize: spec.worldSize, minWorldSize: spec.minWorldSize, dataset: spec.dataset,
            epochs: spec.epochs, configJSON: spec.configJSON, status: .pending, explicit: true,
            createdAtMs: now.unixMillis)
        records[record.id] = record
        return (record, [.persist(record)])
    }

    /// Asks a task that has `members` members to stop: they are told STOP (a push now, then every view they get). A
    /// task with no members stops at once. Stopping a stopping or stopped task is a no-op (no directives); one that
    /// completed or failed cannot be stopped.
    ///
    /// - Throws: `notFound` for an unknown task; `failedPrecondition` for one that completed or failed.
    public mutating func stop(_ id: TaskID, members: Int, now: Moment) throws(CoreError) -> (
        record: TaskRecord, directives: [Directive]
    ) {
        guard var record = records[id.rawValue] else {
            throw CoreError(.notFound, "no task \(id): GET /api/tasks lists them")
        }
        switch record.status {
        case .stopping, .stopped:
            return (record, [])
        case .completed, .failed:
            throw CoreError(
                .failedPrecondition, "task \(id) already \(record.status.rawValue): there is nothing to stop")
        case .pending, .running:
            record.reason = "stop requested"
            if members == 0 {
                record.status = .stopped
                record.endedAtMs = now.unixMillis
                records[record.id] = record
                return (record, [.persist(record), .ended(record)])
            }
            // Not ended yet: it ends when its last member leaves.
            record.status = .stopping
            records[record.id] = record
            return (record, [.persist(record), .push(id, reason: "task \(id) is stopping")])
        }
    }

    /// The task's membership changed to `members` members because of `cause`: a join starts the task (creating it,
    /// with the world size the joiner asked for in `hint`, if nobody created it); the departure of its last member
    /// ends it: stopped after a stop, completed when the last one left after finishing, failed when it failed or
    /// died. A restarted process changes nothing: the worker is back at once.
    public mutating func onMembershipChange(
        _ id: TaskID, members: Int, cause: MembershipChangeCause, hint: WorldSizeHint = WorldSizeHint(), now: Moment
    ) -> [Directive] {
        let changed: TaskRecord?
        switch cause {
        case .joined:
            changed = join(id, hint: hint, nowMs: now.unixMillis)
        case .left(_, let failed):
            changed = depart(id, failed ? .failed : .left, remaining: members, nowMs: now.unixMillis)
        case .died:
            changed = depart(id, .died, remaining: members, nowMs: now.unixMillis)
        case .restartedOldProcessLeft, .restartedNewProcessJoined:
            changed = nil
        }
        guard let changed else { return [] }
        return changed.status.isTerminal ? [.persist(changed), .ended(changed)] : [.persist(changed)]
    }

    /// Whether a worker that is not a member of the task yet may join it now, when it has `members` members: not
    /// beyond its world size (the joiner's `hint` counts for a task it would create).
    ///
    /// - Throws: `resourceExhausted` (reason `TASK_FULL`, with the world size) when the task already has its largest
    ///   world size.
    public func admit(_ id: TaskID, members: Int, hint: WorldSizeHint) throws(CoreError) {
        let most =
            records[id.rawValue].map { $0.status.isTerminal && !$0.explicit ? hint.max : $0.worldSize } ?? hint.max
        guard most > 0, members >= most else { return }
        throw CoreError(
            .resourceExhausted,
            "task \(id) already has its world size of \(most) workers: this worker can join when a member leaves or "
                + "dies (the SDK keeps trying), or raise the task's world_size",
            reason: .taskFull, details: ErrorDetails(worldSize: most))
    }

    // MARK: Internals

    /// How a member stopped being one.
    private enum Departure {
        case left, failed, died
    }

    /// A worker joined: the task runs (created implicitly if nobody created it). Returns the record when it changed.
    private mutating func join(_ id: TaskID, hint: WorldSizeHint, nowMs: Int64) -> TaskRecord? {
        guard var record = records[id.rawValue] else {
            let record = TaskRecord(
                id: id.rawValue, worldSize: hint.max, minWorldSize: hint.min, dataset: nil, epochs: nil,
                configJSON: "{}", status: .running, explicit: false, createdAtMs: nowMs, startedAtMs: nowMs)
            records[record.id] = record
            return record
        }
        switch record.status {
        case .pending, .stopped, .completed, .failed:
            // A job started again after it ended is running again. (While it is stopping, joiners are told to stop.)
            // One that only workers ever described takes the new run's world size.
            if record.status.isTerminal, !record.explicit {
                record.worldSize = hint.max
                record.minWorldSize = hint.min
            }
            record.status = .running
            record.startedAtMs = record.startedAtMs ?? nowMs
            record.endedAtMs = nil
            record.reason = nil
        case .running, .stopping:
            return nil
        }
        records[record.id] = record
        return record
    }

    /// A member departed and `remaining` are left; the task ends when nobody is. Returns the record when it changed.
    private mutating func depart(_ id: TaskID, _ departure: Departure, remaining: Int, nowMs: Int64) -> TaskRecord? {
        guard remaining == 0, var record = records[id.rawValue] else { return nil }
        switch record.status {
        case .stopping:
            record.status = .stopped
            record.reason = "stop requested; every worker left"
        case .running:
            switch departure {
            case .left:
                record.status = .completed
                record.reason = "every worker left"
            case .failed:
                record.status = .failed
                record.reason = "the last worker failed"
            case .died:
                record.status = .failed
                record.reason = "the last worker died"
            }
        case .pending, .stopped, .completed, .failed:
            return nil
        }
        record.endedAtMs = nowMs
        records[record.id] = record
        return record
    }
}

/// The world size a registering worker asks for, used when its registration creates the task (a launcher knows how
/// many workers it starts; a task created through the API keeps its own).
public struct WorldSizeHint: Sendable, Hashable {
    /// Fewest members to train with (0: the same as `max`).
    public var min: Int
    /// Most members (0: not said).
    public var max: Int

    /// A hint; `min` 0 means `max`.
    public init(min: Int = 0, max: Int = 0) {
        self.min = min
        self.max = max
    }
}

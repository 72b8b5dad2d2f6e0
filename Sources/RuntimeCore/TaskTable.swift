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
        /// The last worker died (or every one did): nobody is left to finish.
        case failed

        /// Whether the task has ended (workers joining again run it again).
        public var isTerminal: Bool { self == .stopped || self == .completed || self == .failed }
    }

    /// The task's id, which workers name at registration.
    public var id: String
    /// Members the job is meant to have (0: not said).
    public var worldSize: Int
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
    /// When it reached its current terminal status (or was asked to stop).
    public var endedAtMs: Int64?
    /// Why it is stopping, stopped, completed or failed.
    public var reason: String?

    /// The task's id as a ``TaskID``.
    public var taskID: TaskID { TaskID(unchecked: id) }
}

/// What the API asks for when it creates a task.
public struct TaskSpec: Sendable, Hashable {
    /// The id (1-64 of `[A-Za-z0-9._-]`).
    public var id: TaskID
    /// Intended world size, 0-65536 (0: not said).
    public var worldSize: Int
    /// Dataset name, if any.
    public var dataset: String?
    /// Epochs, if any (1-1000000).
    public var epochs: Int?
    /// Configuration JSON object, at most 64 KiB.
    public var configJSON: String

    /// Validates a spec.
    public init(id: TaskID, worldSize: Int, dataset: String?, epochs: Int?, configJSON: String) throws(CoreError) {
        guard (0...65_536).contains(worldSize) else {
            throw .invalid("world_size", "must be between 0 (not said) and 65536", got: String(worldSize))
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
        self.dataset = dataset
        self.epochs = epochs
        self.configJSON = configJSON
    }
}

/// Every task and its lifecycle: a pure state machine fed by the API (create, stop) and by membership (joins, leaves,
/// deaths). Each event returns the records that changed, for the shell to persist.
public struct TaskTable: Sendable {
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

    /// Creates a task through the API. An id a worker already used (an implicit task) is taken over if that task has
    /// not ended; any other existing id is `alreadyExists`.
    public mutating func create(_ spec: TaskSpec, nowMs: Int64) throws(CoreError) -> TaskRecord {
        if var existing = records[spec.id.rawValue] {
            guard !existing.explicit, !existing.status.isTerminal else {
                throw CoreError(
                    .alreadyExists,
                    "task \(spec.id) already exists (\(existing.status.rawValue)): choose another id")
            }
            existing.explicit = true
            existing.worldSize = spec.worldSize
            existing.dataset = spec.dataset
            existing.epochs = spec.epochs
            existing.configJSON = spec.configJSON
            records[existing.id] = existing
            return existing
        }
        guard records.count < Self.maxTasks else {
            throw CoreError(.resourceExhausted, "at most \(Self.maxTasks) tasks: this coordinator is full")
        }
        let record = TaskRecord(
            id: spec.id.rawValue, worldSize: spec.worldSize, dataset: spec.dataset, epochs: spec.epochs,
            configJSON: spec.configJSON, status: .pending, explicit: true, createdAtMs: nowMs)
        records[record.id] = record
        return record
    }

    /// Asks a task to stop. Stopping a stopping or stopped task is a no-op; one that completed or failed cannot be.
    /// A task with no workers stops at once.
    public mutating func stop(_ id: TaskID, members: Int, nowMs: Int64) throws(CoreError) -> (
        record: TaskRecord, changed: Bool
    ) {
        guard var record = records[id.rawValue] else {
            throw CoreError(.notFound, "no task \(id): GET /api/tasks lists them")
        }
        switch record.status {
        case .stopping, .stopped:
            return (record, false)
        case .completed, .failed:
            throw CoreError(
                .failedPrecondition, "task \(id) already \(record.status.rawValue): there is nothing to stop")
        case .pending, .running:
            record.status = members == 0 ? .stopped : .stopping
            record.endedAtMs = nowMs
            record.reason = "stop requested"
            records[record.id] = record
            return (record, true)
        }
    }

    /// A worker joined the task: the task starts running (created implicitly if nobody created it). Returns the
    /// record when it changed.
    public mutating func onJoin(_ id: TaskID, nowMs: Int64) -> TaskRecord? {
        guard var record = records[id.rawValue] else {
            let record = TaskRecord(
                id: id.rawValue, worldSize: 0, dataset: nil, epochs: nil, configJSON: "{}", status: .running,
                explicit: false, createdAtMs: nowMs, startedAtMs: nowMs)
            records[record.id] = record
            return record
        }
        switch record.status {
        case .pending, .stopped, .completed, .failed:
            // A job started again after it ended is running again. (While it is stopping, joiners are told to stop.)
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

    /// A member left (`graceful`) or died; `remaining` members are left. When nobody is left the task ends: stopped
    /// after a stop, completed when the last one left gracefully, failed when it died. Returns the record when it
    /// changed.
    public mutating func onDeparture(_ id: TaskID, graceful: Bool, remaining: Int, nowMs: Int64) -> TaskRecord? {
        guard remaining == 0, var record = records[id.rawValue] else { return nil }
        switch record.status {
        case .stopping:
            record.status = .stopped
            record.reason = "stop requested; every worker left"
        case .running:
            record.status = graceful ? .completed : .failed
            record.reason = graceful ? "every worker left" : "the last worker died"
        case .pending, .stopped, .completed, .failed:
            return nil
        }
        record.endedAtMs = nowMs
        records[record.id] = record
        return record
    }
}

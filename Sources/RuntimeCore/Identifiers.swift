/// The identity of a worker process, unique across the coordinator: 1-128 printable ASCII characters, no spaces.
public struct WorkerID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The identifier as the worker sent it.
    public let rawValue: String

    /// Validates a worker id sent by a client.
    public init(_ rawValue: String, field: String = "worker_id") throws(CoreError) {
        guard (1...128).contains(rawValue.utf8.count), Validation.isPrintableToken(rawValue) else {
            throw .invalid(
                field, "must be 1-128 printable ASCII characters without spaces", got: Validation.quoted(rawValue))
        }
        self.rawValue = rawValue
    }

    public var description: String { rawValue }

    public static func < (lhs: WorkerID, rhs: WorkerID) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The identity of a task (training job): 1-64 characters of `[A-Za-z0-9._-]`, because it names directories and
/// object keys. Workers that name no task join ``TaskID/default``.
public struct TaskID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The identifier.
    public let rawValue: String

    /// The task of workers that register without one.
    public static let `default` = TaskID(unchecked: "default")

    /// Validates a task id sent by a client. Where a client may leave it out (`emptyMeansDefault`), the empty
    /// string means ``default``; elsewhere (a task's name in the HTTP API) it is refused like any bad id.
    public init(_ rawValue: String, field: String = "task_id", emptyMeansDefault: Bool = true) throws(CoreError) {
        if rawValue.isEmpty, emptyMeansDefault {
            self = .default
            return
        }
        guard (1...64).contains(rawValue.utf8.count), rawValue.utf8.allSatisfy(Validation.isNameByte), rawValue != ".",
            rawValue != ".."
        else {
            throw .invalid(
                field,
                "must be 1-64 characters of [A-Za-z0-9._-]" + (emptyMeansDefault ? " (or empty for \"default\")" : ""),
                got: Validation.quoted(rawValue))
        }
        self.rawValue = rawValue
    }

    /// A value known to be valid (the default task, records read back from the database).
    init(unchecked rawValue: String) { self.rawValue = rawValue }

    public var description: String { rawValue }

    public static func < (lhs: TaskID, rhs: TaskID) -> Bool { lhs.rawValue < rhs.rawValue }
}

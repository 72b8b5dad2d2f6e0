/// What a worker told the coordinator about itself when it registered (already validated).
public struct WorkerSpec: Sendable, Hashable {
    /// The worker's unique id.
    public var id: WorkerID
    /// The task (training job) it joins.
    public var taskID: TaskID
    /// Where peers can reach it.
    public var host: String
    /// Its port, 1...65535.
    public var port: Int
    /// GPUs it brings, 0...1024.
    public var gpuCount: Int
    /// Free-form labels (e.g. `zone`, `node`).
    public var labels: [String: String]
    /// Which process registered (empty: not said). Another incarnation of a live member is a restarted process.
    public var incarnation: String

    /// Creates a spec from validated fields.
    public init(
        id: WorkerID, taskID: TaskID = .default, host: String, port: Int, gpuCount: Int = 0,
        labels: [String: String] = [:], incarnation: String = ""
    ) {
        self.id = id
        self.taskID = taskID
        self.host = host
        self.port = port
        self.gpuCount = gpuCount
        self.labels = labels
        self.incarnation = incarnation
    }

    /// Whether `other` comes from another process than the one that registered this spec: both name their
    /// incarnation and the names differ.
    public func isAnotherIncarnation(_ other: WorkerSpec) -> Bool {
        !incarnation.isEmpty && !other.incarnation.isEmpty && incarnation != other.incarnation
    }
}

/// Whether a worker is part of its task, durably.
public enum Standing: String, Sendable, Hashable, CaseIterable {
    /// Holds a rank (healthy or suspect).
    case member
    /// Was declared dead by the failure detector.
    case dead
    /// Deregistered.
    case left
}

/// The durable part of a worker: what survives a coordinator restart. Heartbeats, steps and metrics are soft state
/// and are not in here.
public struct WorkerRecord: Sendable, Hashable {
    /// What the worker registered with.
    public var spec: WorkerSpec
    /// Order of the (latest) join across the coordinator; ranks within a task follow it.
    public var joinSeq: UInt64
    /// Wall-clock time of the latest join, Unix milliseconds.
    public var registeredAtMillis: Int64
    // (The one-byte fields sit together, after the digest: every member holds a record, so padding counts.)
    /// The digest of the secret its registration was given: every call that names the worker must present that
    /// secret. Nil for a record written before workers had secrets: such a worker is claimed by registering again.
    public var secretDigest: SecretDigest?
    /// Member, dead or left.
    public var standing: Standing
    /// Wall-clock time it stopped being a member, Unix milliseconds.
    public var departedAtMillis: Int64?

    /// Creates a record.
    public init(
        spec: WorkerSpec, joinSeq: UInt64, registeredAtMillis: Int64, standing: Standing,
        departedAtMillis: Int64? = nil, secretDigest: SecretDigest? = nil
    ) {
        self.spec = spec
        self.joinSeq = joinSeq
        self.registeredAtMillis = registeredAtMillis
        self.standing = standing
        self.departedAtMillis = departedAtMillis
        self.secretDigest = secretDigest
    }
}

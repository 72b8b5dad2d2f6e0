/// What the coordinator tells a worker to do next.
public enum WorkerCommand: String, Sendable, Hashable {
    /// Keep training.
    case proceed
    /// The task is stopping: finish cleanly and leave.
    case stop
    /// The worker is no longer a member (declared dead, or left): register again.
    case rejoin
}

/// A worker's health as the failure detector sees it.
public enum WorkerHealth: String, Sendable, Hashable, CaseIterable {
    /// Heard from within the suspect timeout.
    case healthy
    /// Silent for longer than the suspect timeout; still a member.
    case suspect
    /// Silent for longer than the dead timeout; no longer a member.
    case dead
    /// Deregistered.
    case left
}

/// A worker's place in its task at one membership epoch, as sent in heartbeat replies and session pushes.
public struct MembershipView: Sendable, Hashable {
    /// The worker's task.
    public var taskID: TaskID
    /// Dense rank `0..<worldSize`, or nil when the worker is not a member.
    public var rank: Int?
    /// Number of members of the task.
    public var worldSize: Int
    /// The task's membership epoch (fencing token).
    public var epoch: UInt64
    /// What the worker should do.
    public var command: WorkerCommand
    /// The worker's health.
    public var health: WorkerHealth
    /// Why this view was sent, for the worker's logs (empty for plain heartbeat replies).
    public var reason: String

    /// Creates a view.
    public init(
        taskID: TaskID, rank: Int?, worldSize: Int, epoch: UInt64, command: WorkerCommand, health: WorkerHealth,
        reason: String = ""
    ) {
        self.taskID = taskID
        self.rank = rank
        self.worldSize = worldSize
        self.epoch = epoch
        self.command = command
        self.health = health
        self.reason = reason
    }
}

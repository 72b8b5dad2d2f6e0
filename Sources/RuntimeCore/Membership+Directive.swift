extension Membership {
    /// What the shell must do after an event: the pure core decides, the shell carries it out.
    public enum Directive: Sendable, Hashable {
        /// Write these durable changes (one transaction). A reply that promises durability waits for it.
        case persist(MembershipChange)
        /// The task's membership changed to `members` (rank order) at `epoch`: the other cores follow it, and the
        /// shell pushes the new view to the task's members that have an open session. One event can change a task's
        /// membership twice (a restarted process: its old incarnation leaves, the new one joins); each change is
        /// its own directive, in order.
        case membershipChanged(TaskID, members: [WorkerID], epoch: UInt64, reason: String)
        /// Something worth a log line happened.
        case log(MembershipEvent)
    }
}

/// Durable changes produced by one membership event, written in one transaction.
public struct MembershipChange: Sendable, Hashable {
    /// Worker records to insert or replace.
    public var upserted: [WorkerRecord]
    /// Workers to delete (departed longer than the retention).
    public var forgotten: [WorkerID]
    /// New membership epochs of tasks.
    public var epochs: [TaskID: UInt64]

    /// Creates a change.
    public init(upserted: [WorkerRecord] = [], forgotten: [WorkerID] = [], epochs: [TaskID: UInt64] = [:]) {
        self.upserted = upserted
        self.forgotten = forgotten
        self.epochs = epochs
    }

    /// True when there is nothing to write.
    public var isEmpty: Bool { upserted.isEmpty && forgotten.isEmpty && epochs.isEmpty }
}

/// Membership events worth a log line.
public enum MembershipEvent: Sendable, Hashable {
    /// A worker joined (or rejoined) a task.
    case joined(WorkerID, TaskID, rank: Int, epoch: UInt64)
    /// A worker deregistered; `failed` when it said it left because it failed.
    case left(WorkerID, TaskID, epoch: UInt64, failed: Bool)
    /// A member registered again from a new process (another incarnation): the old process counts as gone; the new
    /// one keeps the rank (or, restarted into another task, joins it: a `joined` follows).
    case restarted(WorkerID, TaskID, epoch: UInt64)
    /// A worker missed heartbeats for longer than the suspect timeout.
    case suspected(WorkerID, TaskID, silentFor: Duration)
    /// A suspect worker was heard from again.
    case recovered(WorkerID, TaskID)
    /// A worker missed heartbeats for longer than the dead timeout and lost its rank.
    case declaredDead(WorkerID, TaskID, silentFor: Duration, epoch: UInt64)
    /// A departed worker's record passed the retention and was dropped.
    case forgotten(WorkerID)
    /// The coordinator did not tick for `gap`: that time was not counted as the members' silence.
    case coordinatorStalled(gap: Duration)
}

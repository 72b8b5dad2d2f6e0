extension Membership {
    /// What the shell must do after an event: the pure core decides, the shell carries it out.
    public enum Directive: Sendable, Hashable {
        /// Write these durable changes (one transaction). A reply that promises durability waits for it.
        case persist(MembershipChange)
        /// The task's membership changed to `members` (rank order) at `epoch`, because of `cause`: the other cores
        /// follow it (barriers, checkpoints, data ledgers, the task's lifecycle), and the shell pushes the new view
        /// to the task's members that have an open session. One event can change a task's membership twice (a
        /// restarted process: its old incarnation leaves, the new one joins); each change is its own directive, in
        /// order.
        case membershipChanged(TaskID, members: [WorkerID], epoch: UInt64, cause: MembershipChangeCause)
        /// Something worth a log line happened.
        case log(MembershipEvent)
    }
}

/// Why a task's membership changed; its description is the `reason` of the views pushed for it.
public enum MembershipChangeCause: Sendable, Hashable, CustomStringConvertible {
    /// A worker joined at `rank`.
    case joined(WorkerID, rank: Int)
    /// A worker deregistered (`failed`: saying it failed).
    case left(WorkerID, failed: Bool)
    /// Workers were declared dead after `silence` without heartbeats (those of one tick together).
    case died([WorkerID], after: Duration)
    /// A member registered from a new process: first its previous process counts as gone...
    case restartedOldProcessLeft(WorkerID)
    /// ...then the new process takes its rank again.
    case restartedNewProcessJoined(WorkerID, rank: Int)

    public var description: String {
        switch self {
        case .joined(let id, let rank): "\(id) joined as rank \(rank)"
        case .left(let id, let failed): failed ? "\(id) failed and left" : "\(id) left"
        case .died(let ids, let silence):
            "\(ids.map(\.rawValue).joined(separator: ", ")) declared dead after \(silence) without heartbeats"
        case .restartedOldProcessLeft(let id): "\(id) restarted: its previous process left"
        case .restartedNewProcessJoined(let id, let rank): "\(id) restarted: its new process took rank \(rank) again"
        }
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

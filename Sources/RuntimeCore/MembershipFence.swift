/// The membership epoch as a fencing token: the one rule every call that carries an epoch (shard reports, checkpoint
/// openings, barrier arrivals) is held to, and the one answer to a worker that is no longer a member.
public enum MembershipFence {
    /// How much a call's epoch may lag the task's.
    public enum Rule: Sendable, Hashable {
        /// Any epoch up to the task's current one: the call is fenced further by what it refers to (a shard report
        /// by its lease's epoch).
        case notAhead
        /// Exactly the task's current epoch: ranks may have changed since an older one (a checkpoint part would be
        /// saved under another rank's key; a barrier would meet members the caller has not synchronised with).
        case current
    }

    /// Checks the epoch a worker sent (`seen`) against its task's `current` one.
    ///
    /// - Parameter advice: what the caller should do about a stale epoch (`"arrive again"`), for the message.
    /// - Throws: `invalidArgument` for an epoch ahead of the task's (no coordinator handed it out); under
    ///   ``Rule/current``, `failedPrecondition` with reason `STALE_EPOCH` and the current epoch for an older one.
    public static func check(
        _ seen: UInt64, current: UInt64, task: TaskID, rule: Rule, advice: String
    ) throws(CoreError) {
        guard seen <= current else {
            throw .invalid(
                "membership_epoch", "must not be ahead of task \(task)'s current membership epoch \(current)",
                got: String(seen))
        }
        guard rule == .current, seen < current else { return }
        throw CoreError(
            .failedPrecondition,
            "membership_epoch \(seen) is stale: task \(task) is at \(current) (its membership changed since); \(advice)",
            reason: .staleEpoch, details: ErrorDetails(membershipEpoch: current))
    }

    /// The error for a worker the coordinator knows but that is no longer a member of `task`.
    public static func notAMember(_ worker: WorkerID, task: TaskID) -> CoreError {
        CoreError(
            .failedPrecondition,
            "worker \(worker) is not a member of task \(task) (it was declared dead or left): register again (the "
                + "Python SDK does this automatically)",
            reason: .notAMember)
    }
}

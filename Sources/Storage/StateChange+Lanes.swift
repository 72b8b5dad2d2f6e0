import DataShard
public import RuntimeCore

/// How the write-behind queue orders and sizes changes (see ``WriteBehindQueue``).
extension StateChange {
    /// The queue's lane for this change: membership and task records are small and what every heartbeat
    /// acknowledgement and push reflects, so they never wait behind data-ledger and checkpoint writes.
    public var lane: WriteBehindQueue.Lane {
        switch self {
        case .membership, .task: .membership
        case .data, .checkpoint, .checkpointForgotten: .bulk
        }
    }

    /// For a bulk change, the task whose share of the bulk lane it goes in (nil: a dataset registration, which
    /// concerns every task and is written before any task's changes enqueued after it).
    public var bulkTask: TaskID? {
        switch self {
        case .data(let change): change.task
        case .checkpoint(let record): record.id.task
        case .checkpointForgotten(let id): id.task
        case .membership, .task: nil
        }
    }

    /// The work this change puts into a transaction, in shard records (at least 1; a move is one compact row).
    public var cost: Int {
        if case .data(.shardsChanged(_, let records)) = self { return max(records.count, 1) }
        return 1
    }

    /// Splits a change too big for one bounded transaction into its first `limit` shard records and the rest, or nil
    /// when it cannot be split (every change but a ledger's shard records: each record is a shard's whole state, so a
    /// crash between the pieces leaves some shards updated and others not, each in a state it really had, which the
    /// restart replays like any other change that was or was not written).
    func split(first limit: Int) -> (head: StateChange, rest: StateChange)? {
        guard case .data(.shardsChanged(let key, let records)) = self, limit > 0, records.count > limit else {
            return nil
        }
        return (
            .data(.shardsChanged(key, Array(records.prefix(limit)))),
            .data(.shardsChanged(key, Array(records.dropFirst(limit))))
        )
    }
}

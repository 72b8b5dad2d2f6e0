public import DataShard
public import RuntimeCore

/// The conversion between a checkpoint's data position and the shard ledgers it was taken from and is restored to.
extension DataPosition {
    /// The position of started shards, as ``DatasetCatalog/startedShards(of:ownedBy:)`` lists them.
    public init(startedShards: [LedgerKey: [ShardRecord]]) {
        self.init()
        for (key, records) in startedShards {
            epochs[EpochKey(dataset: key.dataset, epoch: key.epoch)] = Dictionary(
                uniqueKeysWithValues: records.map { ($0.shard, Cursor(consumed: $0.consumed, done: $0.state == .done)) }
            )
        }
    }

    /// The ledger records a task's ledgers are reset to when this position is restored: done shards stay done,
    /// started ones are leased again at their cursor (placement picks their owners among the current members), all
    /// as of the task's current `membershipEpoch`.
    public func ledgerRecords(task: TaskID, membershipEpoch: UInt64) -> [LedgerKey: [ShardRecord]] {
        var records: [LedgerKey: [ShardRecord]] = [:]
        for (key, cursors) in epochs {
            records[LedgerKey(task: task, dataset: key.dataset, epoch: key.epoch)] = cursors.map { shard, cursor in
                ShardRecord(
                    shard: shard, owner: nil, leaseEpoch: membershipEpoch, consumed: cursor.consumed,
                    state: cursor.done ? .done : .leased)
            }
        }
        return records
    }
}

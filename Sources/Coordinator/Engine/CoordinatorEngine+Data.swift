public import DataShard
public import RuntimeCore

/// The data plane: datasets, shard assignments and progress reports.
extension CoordinatorEngine {
    /// Registers a dataset (idempotent for the same spec); returns once it is durable.
    public func registerDataset(_ spec: DatasetSpec) async throws -> (record: DatasetRecord, created: Bool) {
        let (record, created, changes) = try catalog.register(spec, now: now())
        persist(changes, task: nil)
        if created {
            logger.info(
                "dataset registered",
                metadata: [
                    "dataset": "\(spec.name)", "samples": "\(spec.totalSamples)", "shards": "\(spec.shardCount)",
                ])
        }
        // Also covers a repeated registration, which must not be acknowledged before the first one is durable.
        try await queue.waitUntilDurable(queue.lastTicket)
        return (record, created)
    }

    /// The shards `worker` should read in `epoch` of `dataset`, once everything they reflect is durable.
    ///
    /// - Throws: `notFound` for an unknown worker or dataset; `failedPrecondition` when the worker is not a member.
    public func shardAssignment(dataset: String, worker: WorkerID, epoch: Int64) async throws -> ShardAssignment {
        let task = try memberTask(of: worker)
        let key = LedgerKey(task: task, dataset: dataset, epoch: epoch)
        let (leases, progress, changes) = try catalog.assignment(
            key: key, worker: worker, members: membership.members(of: task),
            membershipEpoch: membership.epoch(of: task), now: now())
        persist(changes, task: task)
        // A new ledger, or stolen shards: idle workers poll, and their empty answers change nothing.
        if !changes.isEmpty { noteDatasetProgress(key) }
        try await settle(task)
        return ShardAssignment(
            leases: leases, progress: progress, membershipEpoch: membership.epoch(of: task),
            shuffle: catalog.spec(named: dataset)?.shuffle ?? false)
    }

    /// Commits `worker`'s cursor in `shard`; returns once it is durable.
    public func reportShardProgress(
        dataset: String, worker: WorkerID, epoch: Int64, membershipEpoch: UInt64, shard: Int64, consumed: Int64
    ) async throws -> (record: ShardRecord, progress: LedgerProgress) {
        let task = try memberTask(of: worker)
        let current = membership.epoch(of: task)
        guard membershipEpoch <= current else {
            throw CoreError.invalid(
                "membership_epoch", "must not be ahead of task \(task)'s current membership epoch \(current)",
                got: String(membershipEpoch))
        }
        let (record, progress, changes) = try catalog.report(
            key: LedgerKey(task: task, dataset: dataset, epoch: epoch), worker: worker,
            membershipEpoch: membershipEpoch, shard: shard, consumed: consumed)
        persist(changes, task: task)
        if !changes.isEmpty { noteDatasetProgress(LedgerKey(task: task, dataset: dataset, epoch: epoch)) }
        try await settle(task)
        return (record, progress)
    }

    /// Drops one epoch's ledger (an operator's action, through the HTTP API); returns once that is durable.
    ///
    /// - Throws: `notFound` for an unknown dataset or ledger.
    public func dropLedger(_ key: LedgerKey) async throws -> (record: DatasetRecord, ledgers: [LedgerSummary]) {
        persist(try catalog.dropLedger(key), task: key.task)
        noteDatasetProgress(key)
        try await settle(key.task)
        logger.notice("dataset epoch ledger dropped", metadata: ["task_id": "\(key.task)", "ledger": "\(key)"])
        let record = catalog.registered.first { $0.spec.name == key.dataset }!
        return (record, catalog.summaries(of: key.dataset))
    }

    /// Every registered dataset with the summaries of its retained ledgers, for `/api/datasets`.
    public func datasets() -> [(record: DatasetRecord, ledgers: [LedgerSummary])] {
        catalog.registered.map { ($0, catalog.summaries(of: $0.spec.name)) }
    }

    private func memberTask(of worker: WorkerID) throws(CoreError) -> TaskID {
        guard let view = membership.view(of: worker) else { throw Membership.unknown(worker) }
        guard view.rank != nil else {
            throw CoreError(
                .failedPrecondition,
                "worker \(worker) is not a member of task \(view.taskID) (it was declared dead or left): "
                    + "register again")
        }
        return view.taskID
    }
}

/// A worker's shards for an epoch, as `GetShardAssignment` answers.
public struct ShardAssignment: Sendable {
    /// The shards to read, in epoch order.
    public var leases: [ShardLease]
    /// The ledger's progress.
    public var progress: LedgerProgress
    /// The task's membership epoch the assignment is valid at.
    public var membershipEpoch: UInt64
    /// Whether the dataset's sample orders are shuffled.
    public var shuffle: Bool
}

public import DataShard
public import RuntimeCore

/// The data plane: datasets, shard assignments and progress reports.
extension CoordinatorEngine {
    /// Registers a dataset (idempotent for the same spec); returns once it is durable.
    public func registerDataset(_ spec: DatasetSpec) async throws -> (record: DatasetRecord, created: Bool) {
        let (record, created, directives) = try catalog.register(spec, now: now())
        carryOut(directives)
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
    /// - Throws: `notFound` for an unknown worker or dataset; `NOT_A_MEMBER` when the worker is not a member.
    public func shardAssignment(
        dataset: String, worker: WorkerID, epoch: Int64, page: AssignmentPage = AssignmentPage(limit: .max)
    ) async throws -> ShardAssignment {
        let member = try membership.member(worker)
        let key = LedgerKey(task: member.task, dataset: dataset, epoch: epoch)
        let (leases, next, progress, directives) = try catalog.assignment(
            key: key, worker: worker, members: membership.members(of: member.task), membershipEpoch: member.epoch,
            page: page, now: now())
        carryOut(directives)
        try await settle(member.task)
        return ShardAssignment(
            leases: leases, next: next, progress: progress, membershipEpoch: membership.epoch(of: member.task),
            shuffle: catalog.spec(named: dataset)?.shuffle ?? false)
    }

    /// Commits `worker`'s cursor in `shard`; returns once it is durable.
    ///
    /// - Throws: what ``Membership/member(_:seenEpoch:rule:advice:)`` throws (an unknown worker, a non-member, a
    ///   membership epoch ahead of the task's); the ledger's errors (`SHARD_MOVED` for a shard that moved).
    public func reportShardProgress(
        dataset: String, worker: WorkerID, epoch: Int64, membershipEpoch: UInt64, shard: Int64, consumed: Int64
    ) async throws -> (record: ShardRecord, progress: LedgerProgress) {
        let member = try membership.member(worker, seenEpoch: membershipEpoch, rule: .notAhead)
        let (record, progress, directives) = try catalog.report(
            key: LedgerKey(task: member.task, dataset: dataset, epoch: epoch), worker: worker,
            membershipEpoch: membershipEpoch, shard: shard, consumed: consumed)
        carryOut(directives)
        try await settle(member.task)
        return (record, progress)
    }

    /// Drops one epoch's ledger (an operator's action, through the HTTP API); returns once that is durable.
    ///
    /// - Throws: `notFound` for an unknown dataset or ledger.
    public func dropLedger(_ key: LedgerKey) async throws -> (record: DatasetRecord, ledgers: [LedgerSummary]) {
        carryOut(try catalog.dropLedger(key))
        try await settle(key.task)
        logger.notice("dataset epoch ledger dropped", metadata: ["task_id": "\(key.task)", "ledger": "\(key)"])
        let record = catalog.registered.first { $0.spec.name == key.dataset }!
        return (record, catalog.summaries(of: key.dataset))
    }

    /// Every registered dataset with the summaries of its retained ledgers, for `/api/datasets`.
    public func datasets() -> [(record: DatasetRecord, ledgers: [LedgerSummary])] {
        catalog.registered.map { ($0, catalog.summaries(of: $0.spec.name)) }
    }
}

/// A worker's shards for an epoch, as `GetShardAssignment` answers.
public struct ShardAssignment: Sendable {
    /// The shards to read, in epoch order (one page of them).
    public var leases: [ShardLease]
    /// Where the next page starts (nil after the last).
    public var next: Int64?
    /// The ledger's progress.
    public var progress: LedgerProgress
    /// The task's membership epoch the assignment is valid at.
    public var membershipEpoch: UInt64
    /// Whether the dataset's sample orders are shuffled.
    public var shuffle: Bool
}

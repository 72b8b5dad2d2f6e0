public import DataShard
public import RuntimeCore

/// The data plane: datasets, shard assignments and progress reports.
extension CoordinatorEngine {
    /// Registers a dataset (idempotent for the same spec); returns once it is durable.
    public func registerDataset(_ spec: DatasetSpec) async throws -> (record: DatasetRecord, created: Bool) {
        try await dataReady()
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
        try await dataReady()
        var member = try membership.member(worker)
        let key = LedgerKey(task: member.task, dataset: dataset, epoch: epoch)
        while true {
            try await awaitSync(key)
            guard let spec = try catalog.ledgerToCreate(key, building: ledgerBuilds.keys) else { break }
            try await awaitLedger(key, spec: spec)
        }
        // The membership may have changed while the ledger was built or synced.
        member = try membership.member(worker)
        let (leases, next, progress, directives) = try catalog.assignment(
            key: key, worker: worker, members: membership.members(of: member.task), membershipEpoch: member.epoch,
            page: page, now: now())
        carryOut(directives)
        try await settle(member.task)
        return ShardAssignment(
            leases: leases, next: next, progress: progress, membershipEpoch: membership.epoch(of: member.task),
            shuffle: catalog.spec(named: dataset)?.shuffle ?? false)
    }

    /// Longest a call waits for a new ledger to be built before it is told to retry (the build goes on): below the
    /// SDK's default call timeout (10 s), so that a client is told to retry rather than timing out.
    static let ledgerBuildWait: Duration = .seconds(8)

    /// Most ledgers built at once, across every task: each holds every shard's placement while it is built, and
    /// takes a thread of its own (see ``OffPool``). Ledgers being synced with a membership change count too.
    static let maxLedgerBuilds = 2

    /// Waits until `key`'s new ledger is built and installed, or at most ``ledgerBuildWait``. Placing every shard is
    /// the one step that looks at each of them (seconds at 2^24 shards), so it runs off this actor: heartbeats and the
    /// calls of every other ledger and task go on meanwhile; callers for this ledger share one build.
    ///
    /// - Throws: `unavailable` (retry after 2 s) when the build takes longer than ``ledgerBuildWait``; what installing
    ///   it throws (``DatasetCatalog/install(_:key:members:membershipEpoch:now:)``).
    func awaitLedger(_ key: LedgerKey, spec: DatasetSpec) async throws {
        let build: Task<Void, any Error>
        if let running = ledgerBuilds[key] {
            build = running
        } else {
            guard ledgerBuilds.count < Self.maxLedgerBuilds else {
                throw CoreError(
                    .unavailable,
                    "the coordinator is building or syncing \(ledgerBuilds.count) other epoch ledgers: retry in a few "
                        + "seconds",
                    details: ErrorDetails(retryAfter: .seconds(2)))
            }
            let members = membership.members(of: key.task)
            let epoch = membership.epoch(of: key.task)
            let config = catalog.config
            let started = ContinuousClock.now
            build = Task {
                let ledger = await OffPool.run("ledger-build") {
                    ShardLedger(spec: spec, epoch: key.epoch, members: members, membershipEpoch: epoch, config: config)
                }
                try self.installLedger(ledger, key: key, took: ContinuousClock.now - started)
            }
            ledgerBuilds[key] = build
        }
        // Polled: awaiting the build itself could not be given up when the bound passes (a task's value ignores
        // cancellation). The build leaves `ledgerBuilds` when it ends, whatever its outcome.
        let started = ContinuousClock.now
        while ledgerBuilds[key] != nil {
            guard ContinuousClock.now - started < Self.ledgerBuildWait else {
                throw CoreError(
                    .unavailable,
                    "the ledger of \(key) (\(spec.shardCount) shards) is still being built: retry in a few seconds "
                        + "(the build goes on)", details: ErrorDetails(retryAfter: .seconds(2)))
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await build.value
    }

    /// Installs a ledger built off the actor, brought up to date with its task's members as they are now: at once,
    /// or for a big ledger whose task's membership changed during the build (workers joining while the first asks
    /// for its shards), by a sync off the actor (``startSync(_:_:members:epoch:)``).
    private func installLedger(_ ledger: ShardLedger, key: LedgerKey, took: Duration) throws {
        ledgerBuilds[key] = nil
        let members = membership.members(of: key.task)
        let epoch = membership.epoch(of: key.task)
        let changed = ledger.initialMembers != members || ledger.initialMembershipEpoch != epoch
        let offActor = changed && syncsOffActor(shards: ledger.shardCount, members: members.count)
        carryOut(
            try catalog.install(
                ledger, key: key, members: offActor ? ledger.initialMembers : members,
                membershipEpoch: offActor ? ledger.initialMembershipEpoch : epoch, now: now()))
        if offActor { resync(key, members: members, epoch: epoch) }
        logger.info(
            "dataset epoch ledger created",
            metadata: ["ledger": "\(key)", "shards": "\(ledger.shardCount)", "took": "\(took)"])
    }

    /// Commits `worker`'s cursor in `shard`; returns once it is durable.
    ///
    /// - Throws: what ``Membership/member(_:seenEpoch:rule:advice:)`` throws (an unknown worker, a non-member, a
    ///   membership epoch ahead of the task's); the ledger's errors (`SHARD_MOVED` for a shard that moved).
    public func reportShardProgress(
        dataset: String, worker: WorkerID, epoch: Int64, membershipEpoch: UInt64, shard: Int64, consumed: Int64
    ) async throws -> (record: ShardRecord, progress: LedgerProgress) {
        try await dataReady()
        if let task = membership.task(of: worker) {
            try await awaitSync(LedgerKey(task: task, dataset: dataset, epoch: epoch))
        }
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
        try await dataReady()
        try await awaitSync(key)
        carryOut(try catalog.dropLedger(key))
        try await settle(key.task)
        logger.notice("dataset epoch ledger dropped", metadata: ["task_id": "\(key.task)", "ledger": "\(key)"])
        let record = catalog.registered.first { $0.spec.name == key.dataset }!
        return (record, catalog.summaries(of: key.dataset))
    }

    /// Every registered dataset with the summaries of its retained ledgers, as loaded so far (none while the data
    /// plane loads after a restart): for the dashboard's snapshot, which must not wait.
    public func datasets() -> [(record: DatasetRecord, ledgers: [LedgerSummary])] {
        catalog.registered.map { ($0, catalog.summaries(of: $0.spec.name)) }
    }

    /// Every registered dataset with the summaries of its retained ledgers, for `/api/datasets`, once the data plane
    /// is loaded (``dataReady()``).
    public func loadedDatasets() async throws -> [(record: DatasetRecord, ledgers: [LedgerSummary])] {
        try await dataReady()
        return datasets()
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

// MARK: Syncing big ledgers off the actor

extension CoordinatorEngine {
    /// By default, ledgers of at least this many shards are synced with their task's membership changes off this
    /// actor: a join or leave moves a share of every shard (half of them when a second worker joins one that reads
    /// alone), seconds of work at 2^24 shards that would hold every other task's heartbeats and calls. Below it the
    /// sync takes milliseconds and is done at once.
    public static let defaultOffActorSyncShards = 1 << 20

    /// By default, ledgers of tasks with at least this many members are synced off this actor too, whatever their
    /// size: a sync also remakes the placement ring (64 points a member) and goes over every member, about 8 ms at
    /// 10,000 members. One sync per leave on the actor made a 10,000-worker job stopped mid-epoch take 65 s to leave,
    /// with heartbeats waiting up to 17 s behind it and 679 live workers declared dead (bench/RESULTS.md); off the
    /// actor, the changes that arrive during a sync are taken by one more sync after it.
    public static let defaultOffActorSyncMembers = 1000

    /// Whether a ledger of `shards` shards is synced with a task of `members` members off this actor.
    func syncsOffActor(shards: Int, members: Int) -> Bool {
        shards >= offActorSyncShards || members >= offActorSyncMembers
    }

    /// Syncs a ledger checked out of the catalog with its task's `members` at membership `epoch`, off this actor, then
    /// checks it in (``finishSync(_:key:synced:members:epoch:took:)``), which syncs it again if the membership moved
    /// on meanwhile. Calls that would change it wait (``awaitSync(_:)``); it counts as one of the ledgers being built.
    func startSync(_ key: LedgerKey, _ ledger: ShardLedger, members: [WorkerID], epoch: UInt64) {
        let started = ContinuousClock.now
        ledgerBuilds[key] = Task {
            let (synced, directives) = await OffPool.run("ledger-sync") {
                var ledger = ledger
                let directives = ledger.syncMembers(members, membershipEpoch: epoch)
                return (ledger, directives)
            }
            let took = ContinuousClock.now - started
            self.finishSync(synced, key: key, synced: directives, members: members, epoch: epoch, took: took)
        }
    }

    /// Checks a synced ledger in and carries out what its sync changed; syncs it again, off the actor, when the
    /// task's membership changed once more meanwhile.
    private func finishSync(
        _ ledger: ShardLedger, key: LedgerKey, synced directives: [ShardLedger.Directive], members: [WorkerID],
        epoch: UInt64, took: Duration
    ) {
        ledgerBuilds[key] = nil
        carryOut(catalog.checkIn(ledger, key: key, synced: directives))
        logger.info(
            "dataset epoch ledger synced with its task's members",
            metadata: ["ledger": "\(key)", "members": "\(members.count)", "took": "\(took)"])
        let current = membership.epoch(of: key.task)
        guard current != epoch else { return }
        resync(key, members: membership.members(of: key.task), epoch: current)
    }

    /// Checks `key`'s installed ledger out and syncs it off the actor with `members` at membership `epoch`.
    private func resync(_ key: LedgerKey, members: [WorkerID], epoch: UInt64) {
        for (key, ledger) in catalog.checkOutForSync(task: key.task, where: { candidate, _ in candidate == key }) {
            startSync(key, ledger, members: members, epoch: epoch)
        }
    }

    /// Waits while `key`'s ledger is being synced off the actor, at most ``ledgerBuildWait`` (then UNAVAILABLE: retry).
    /// Returns without suspending when it is not: the caller's next step sees the ledger as this check did.
    func awaitSync(_ key: LedgerKey) async throws {
        let started = ContinuousClock.now
        while catalog.isSyncing(key) {
            guard ContinuousClock.now - started < Self.ledgerBuildWait else {
                throw CoreError(
                    .unavailable,
                    "the ledger of \(key) is being brought up to date with its task's members: retry in a few seconds",
                    details: ErrorDetails(retryAfter: .seconds(2)))
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

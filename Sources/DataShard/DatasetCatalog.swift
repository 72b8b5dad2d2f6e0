public import RuntimeCore

/// Identifies one epoch's ledger: ledgers are per task, so two jobs training on one dataset never share one.
public struct LedgerKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The task.
    public var task: TaskID
    /// The dataset's name.
    public var dataset: String
    /// The epoch.
    public var epoch: Int64

    /// Creates a key.
    public init(task: TaskID, dataset: String, epoch: Int64) {
        self.task = task
        self.dataset = dataset
        self.epoch = epoch
    }

    public static func < (a: LedgerKey, b: LedgerKey) -> Bool {
        (a.task, a.dataset, a.epoch) < (b.task, b.dataset, b.epoch)
    }

    public var description: String { "\(dataset) epoch \(epoch) of task \(task)" }
}

/// A registered dataset and when it was first registered.
public struct DatasetRecord: Sendable, Hashable {
    /// The specification.
    public var spec: DatasetSpec
    /// Unix milliseconds of the first registration.
    public var registeredAtMillis: Int64

    /// Creates a record.
    public init(spec: DatasetSpec, registeredAtMillis: Int64) {
        self.spec = spec
        self.registeredAtMillis = registeredAtMillis
    }
}

/// What a ledger was created from: enough to recompute its initial placement.
public struct LedgerHeader: Sendable, Hashable {
    /// Which ledger.
    public var key: LedgerKey
    /// Members of the task at creation, in rank order.
    public var initialMembers: [WorkerID]
    /// The task's membership epoch at creation.
    public var initialMembershipEpoch: UInt64
    /// Unix milliseconds of creation.
    public var createdAtMillis: Int64

    /// Creates a header.
    public init(key: LedgerKey, initialMembers: [WorkerID], initialMembershipEpoch: UInt64, createdAtMillis: Int64) {
        self.key = key
        self.initialMembers = initialMembers
        self.initialMembershipEpoch = initialMembershipEpoch
        self.createdAtMillis = createdAtMillis
    }
}

/// A durable change of the data plane.
public enum DataChange: Sendable, Hashable {
    /// A dataset was registered.
    case datasetRegistered(DatasetRecord)
    /// An epoch's ledger was created.
    case ledgerCreated(LedgerHeader)
    /// Shards of a ledger changed (progress, a restore's records).
    case shardsChanged(LedgerKey, [ShardRecord])
    /// Unfinished shards of a ledger changed owner.
    case shardsMoved(LedgerKey, ShardMove)
    /// A ledger now follows these members (after a membership change of its task).
    case ledgerMembers(LedgerKey, [WorkerID], membershipEpoch: UInt64)
    /// A ledger fell out of the retention and is forgotten.
    case ledgerDropped(LedgerKey)
    /// A ledger's whole state: it replaces every change of the ledger written before it.
    case ledgerSnapshot(LedgerKey, LedgerSnapshot)
}

extension DataChange {
    /// The ledger the change concerns (nil for a dataset registration).
    public var ledgerKey: LedgerKey? {
        switch self {
        case .datasetRegistered: nil
        case .ledgerCreated(let header): header.key
        case .shardsChanged(let key, _), .shardsMoved(let key, _), .ledgerMembers(let key, _, _),
            .ledgerDropped(let key), .ledgerSnapshot(let key, _):
            key
        }
    }

    /// The task whose ledger the change concerns (nil for a dataset registration).
    public var task: TaskID? {
        switch self {
        case .datasetRegistered: nil
        case .ledgerCreated(let header): header.key.task
        case .shardsChanged(let key, _), .shardsMoved(let key, _), .ledgerMembers(let key, _, _),
            .ledgerDropped(let key), .ledgerSnapshot(let key, _):
            key.task
        }
    }
}

/// What the shell must do after an event of the ``DatasetCatalog``.
public enum DataDirective: Sendable, Hashable {
    /// Write this change durably. A change of a ledger counts as a change of its task: no reply about the task leaves
    /// before it is written.
    case persist(DataChange)
    /// A dataset epoch's progress changed (a `dataset_progress` event is due).
    case progressChanged(LedgerKey)
}

extension [DataDirective] {
    /// The durable changes among these directives, in order.
    public var changes: [DataChange] {
        compactMap { directive in
            if case .persist(let change) = directive { change } else { nil }
        }
    }
}

/// A persisted ledger as read back at start-up.
public struct PersistedLedger: Sendable, Hashable {
    /// How it was created.
    public var header: LedgerHeader
    /// The members it followed last, and as of which membership epoch.
    public var members: [WorkerID]
    /// The membership epoch of `members`.
    public var membershipEpoch: UInt64
    /// Its newest snapshot (checked), if one was written; nil for ledgers written before snapshots existed.
    public var snapshot: LedgerSnapshot?
    /// Its changes since the snapshot (since its creation when there is none), in the order they were made.
    public var deltas: [LedgerDelta]

    /// Creates a persisted ledger.
    public init(
        header: LedgerHeader, members: [WorkerID], membershipEpoch: UInt64, snapshot: LedgerSnapshot? = nil,
        deltas: [LedgerDelta]
    ) {
        self.header = header
        self.members = members
        self.membershipEpoch = membershipEpoch
        self.snapshot = snapshot
        self.deltas = deltas
    }
}

/// Shards done out of all, as replies report it.
public struct LedgerProgress: Sendable, Hashable {
    /// Shards done.
    public var done: Int
    /// Shards in all.
    public var total: Int
}

/// A ledger's shard and sample counts, as the dashboard's progress bars show them.
public struct LedgerCounts: Sendable, Hashable {
    /// Shards done.
    public var done: Int
    /// Shards started and not done.
    public var inProgress: Int
    /// Shards in all.
    public var total: Int
    /// Samples committed.
    public var committedSamples: Int64
    /// Samples in the dataset.
    public var totalSamples: Int64
}

/// A ledger's progress in detail, as the HTTP API reports it.
public struct LedgerSummary: Sendable, Hashable {
    /// Which ledger.
    public var key: LedgerKey
    /// Shards done.
    public var done: Int
    /// Shards in all.
    public var total: Int
    /// Unfinished shards per current member, in rank order.
    public var remainingPerMember: [MemberLoad]
    /// Unfinished shards no member owns (every member of the task departed).
    public var unowned: Int
    /// Shards started (claimed or partly committed) and not done.
    public var inProgress: Int
    /// Samples committed (done shards whole, started ones up to their cursor).
    public var committedSamples: Int64
    /// Samples in the dataset.
    public var totalSamples: Int64
}

/// The data plane's state: registered datasets and the recent epochs' ledgers of every task.
///
/// A pure state machine like ``Membership``: events return ``DataChange``s for the shell to persist. Each
/// (task, dataset) keeps the ledgers of its latest ``retainedEpochs`` epochs; older ones are dropped when a new one is
/// created.
public struct DatasetCatalog: Sendable {
    /// Ledgers kept per (task, dataset).
    public static let retainedEpochs = 3
    /// Most datasets registered at once.
    public static let maxDatasets = 10_000
    /// How far beyond a (task, dataset)'s newest epoch a new one may start: far more than any job skips, and it keeps
    /// a client from opening epochs such as 2^62 that no job will ever finish.
    public static let maxEpochLead: Int64 = 100

    /// Placement settings of new ledgers.
    public let config: PlacementConfig
    private var datasets: [String: DatasetRecord] = [:]
    private var ledgers: [LedgerKey: ShardLedger] = [:]
    /// Ledgers checked out to be synced with a membership change off the shell's actor (see
    /// ``checkOutForSync(task:where:)``), as they were when checked out: what reads see meanwhile.
    private var syncing: [LedgerKey: ShardLedger] = [:]
    private var headers: [LedgerKey: LedgerHeader] = [:]
    /// Per ledger, the changes written since its last snapshot: rows (at most; a batch may share one) and estimated
    /// bytes. A new snapshot replaces them once they weigh half a snapshot (see ``snapshotIfDue(_:after:)``).
    private var sinceSnapshot: [LedgerKey: (rows: Int, bytes: Int)] = [:]

    /// An empty catalog.
    public init(config: PlacementConfig = .defaults) {
        self.config = config
    }

    // MARK: Restore

    /// The catalog restored from its durable state and reconciled with the current membership of each task (shards
    /// of workers that departed before their moves were written move now).
    public static func restored(
        config: PlacementConfig = .defaults, datasets: [DatasetRecord], ledgers: [PersistedLedger],
        membership: (TaskID) -> (members: [WorkerID], epoch: UInt64)
    ) -> (catalog: DatasetCatalog, directives: [DataDirective]) {
        var catalog = DatasetCatalog(config: config)
        var changes: [DataChange] = []
        for record in datasets { catalog.datasets[record.spec.name] = record }
        for persisted in ledgers {
            let header = persisted.header
            guard let dataset = catalog.datasets[header.key.dataset] else { continue }
            let current = membership(header.key.task)
            let (ledger, directives) =
                if let snapshot = persisted.snapshot {
                    ShardLedger.restored(
                        spec: dataset.spec, epoch: header.key.epoch, initialMembers: header.initialMembers,
                        initialMembershipEpoch: header.initialMembershipEpoch, config: config, snapshot: snapshot,
                        deltas: persisted.deltas, lastMembers: persisted.members,
                        lastMembershipEpoch: persisted.membershipEpoch, members: current.members,
                        membershipEpoch: current.epoch)
                } else {
                    ShardLedger.restored(
                        spec: dataset.spec, epoch: header.key.epoch, initialMembers: header.initialMembers,
                        initialMembershipEpoch: header.initialMembershipEpoch, config: config, deltas: persisted.deltas,
                        lastMembers: persisted.members, lastMembershipEpoch: persisted.membershipEpoch,
                        members: current.members, membershipEpoch: current.epoch)
                }
            catalog.ledgers[header.key] = ledger
            catalog.headers[header.key] = header
            let reconciled = Self.changes(header.key, directives)
            if persisted.snapshot == nil {
                // Written before snapshots existed: one now, so that the next restart need not place every shard.
                changes += reconciled + [.ledgerSnapshot(header.key, ledger.snapshot())]
                catalog.sinceSnapshot[header.key] = (0, 0)
            } else {
                catalog.sinceSnapshot[header.key] = Self.weight(
                    persisted.deltas.map { delta in
                        switch delta {
                        case .records(let records): .shardsChanged(header.key, records)
                        case .moved(let move): .shardsMoved(header.key, move)
                        }
                    })
                changes += catalog.snapshotIfDue(header.key, after: reconciled)
            }
        }
        return (catalog, changes.map(DataDirective.persist))
    }

    // MARK: Events

    /// Registers a dataset. Registering the same spec again is a no-op.
    ///
    /// - Returns: the record (with the first registration's time), whether this call created it, and directives.
    /// - Throws: `failedPrecondition` when the name is taken by a different spec; `LIMIT_REACHED` beyond
    ///   ``maxDatasets``.
    public mutating func register(_ spec: DatasetSpec, now: Moment) throws(CoreError) -> (
        record: DatasetRecord, created: Bool, directives: [DataDirective]
    ) {
        if let existing = datasets[spec.name] {
            guard existing.spec == spec else {
                let old = existing.spec
                throw CoreError(
                    .failedPrecondition,
                    "dataset \(spec.name) is already registered with total_samples=\(old.totalSamples), "
                        + "shard_size=\(old.shardSize), shuffle=\(old.shuffle), seed=\(old.seed): register a "
                        + "different spec under another name")
            }
            return (existing, false, [])
        }
        guard datasets.count < Self.maxDatasets else {
            throw CoreError(
                .resourceExhausted, "at most \(Self.maxDatasets) datasets can be registered: this coordinator is full",
                reason: .limitReached)
        }
        let record = DatasetRecord(spec: spec, registeredAtMillis: now.unixMillis)
        datasets[spec.name] = record
        return (record, true, [.persist(.datasetRegistered(record))])
    }

    /// A worker asks for its shards of an epoch. The epoch's ledger is created on the first request, placing the
    /// shards on the task's current members.
    ///
    /// - Throws: `notFound` for an unknown dataset; `failedPrecondition` for an epoch that fell out of the retention.
    public mutating func assignment(
        key: LedgerKey, worker: WorkerID, members: [WorkerID], membershipEpoch: UInt64,
        page: AssignmentPage = AssignmentPage(limit: .max), now: Moment
    ) throws(CoreError) -> (leases: [ShardLease], next: Int64?, progress: LedgerProgress, directives: [DataDirective]) {
        var changes = try ensureLedger(key, members: members, membershipEpoch: membershipEpoch, now: now)
        guard ledgers[key] != nil else { throw Self.noLedger(key) }
        // Mutated in place (no copy of the shard arrays): a ledger can hold millions of shards.
        let (leases, next, directives) = ledgers[key]!.assignment(
            for: worker, membershipEpoch: membershipEpoch, page: page)
        changes += snapshotIfDue(key, after: Self.changes(key, directives))
        // A new ledger, or stolen shards; idle workers poll, and their empty answers change nothing.
        return (leases, next, progress(ledgers[key]!), Self.directives(changes, progressOf: [key]))
    }

    /// A worker commits progress through a shard.
    ///
    /// - Throws: `notFound` for an unknown dataset or an epoch nobody asked for yet; the ledger's errors otherwise
    ///   (`SHARD_MOVED` for a shard that is no longer the worker's).
    public mutating func report(
        key: LedgerKey, worker: WorkerID, membershipEpoch: UInt64, shard: Int64, consumed: Int64
    ) throws(CoreError) -> (record: ShardRecord, progress: LedgerProgress, directives: [DataDirective]) {
        guard datasets[key.dataset] != nil else { throw Self.unknown(key.dataset) }
        guard ledgers[key] != nil else { throw Self.noLedger(key) }
        let (record, directives) = try ledgers[key]!.report(
            worker: worker, membershipEpoch: membershipEpoch, shard: shard, consumed: consumed)
        let changes = snapshotIfDue(key, after: Self.changes(key, directives))
        return (record, progress(ledgers[key]!), Self.directives(changes, progressOf: [key]))
    }

    /// Drops one epoch's ledger, finished or not: the operator's way out when a client opened epochs no job will
    /// finish (they count against the ``retainedEpochs`` unfinished ones). A worker still reading it gets `notFound` on
    /// its next report; asking for that epoch's assignment again starts it over.
    ///
    /// - Throws: `notFound` for an unknown dataset or a ledger that does not exist.
    public mutating func dropLedger(_ key: LedgerKey) throws(CoreError) -> [DataDirective] {
        guard datasets[key.dataset] != nil else { throw Self.unknown(key.dataset) }
        guard ledgers.removeValue(forKey: key) != nil || syncing.removeValue(forKey: key) != nil else {
            throw CoreError(.notFound, "no ledger for \(key): GET /api/datasets lists the retained ones")
        }
        headers[key] = nil
        sinceSnapshot[key] = nil
        return [.persist(.ledgerDropped(key)), .progressChanged(key)]
    }

    /// A task's membership changed: its unfinished ledgers move shards accordingly.
    public mutating func onMembershipChange(task: TaskID, members: [WorkerID], membershipEpoch: UInt64)
        -> [DataDirective]
    {
        var changes: [DataChange] = []
        for key in ledgers.keys.sorted() where key.task == task && ledgers[key]?.isComplete == false {
            changes += snapshotIfDue(
                key, after: Self.changes(key, ledgers[key]!.syncMembers(members, membershipEpoch: membershipEpoch)))
        }
        return changes.map(DataDirective.persist)
    }

    /// Takes the task's unfinished ledgers that `big` selects out of the catalog, to be synced with the task's new
    /// membership elsewhere (``ShardLedger/syncMembers(_:membershipEpoch:)`` moves shards: on a ledger of millions of
    /// shards with few members, seconds of work that a shell runs off its actor), then checked in with
    /// ``checkIn(_:key:synced:)``. Call it before ``onMembershipChange(task:members:membershipEpoch:)``, which then
    /// syncs the others.
    ///
    /// Meanwhile reads (``counts(of:)``, ``summaries(of:)``, ``startedShards(of:ownedBy:)``) see the ledger as it was
    /// checked out, ``isSyncing(_:)`` says so, and the shell keeps calls that would change it
    /// (``assignment(key:worker:members:membershipEpoch:page:now:)``, ``report(key:worker:membershipEpoch:shard:consumed:)``,
    /// ``dropLedger(_:)``, ``rewind(task:to:members:membershipEpoch:now:)``) waiting until it is checked in.
    public mutating func checkOutForSync(task: TaskID, where big: (LedgerKey, ShardLedger) -> Bool)
        -> [(LedgerKey, ShardLedger)]
    {
        let keys = ledgers.keys.filter { key in
            key.task == task && ledgers[key].map { !$0.isComplete && big(key, $0) } ?? false
        }
        return keys.sorted().map { key in
            let ledger = ledgers.removeValue(forKey: key)!
            syncing[key] = ledger
            return (key, ledger)
        }
    }

    /// Puts a ledger checked out by ``checkOutForSync(task:where:)`` back, synced, with the `synced` directives its
    /// sync returned; returns what to persist. Nothing happens (the result is dropped) when the ledger was dropped or
    /// replaced meanwhile.
    public mutating func checkIn(_ ledger: ShardLedger, key: LedgerKey, synced: [ShardLedger.Directive])
        -> [DataDirective]
    {
        guard syncing.removeValue(forKey: key) != nil, ledgers[key] == nil, headers[key] != nil else { return [] }
        ledgers[key] = ledger
        return Self.directives(snapshotIfDue(key, after: Self.changes(key, synced)), progressOf: [key])
    }

    /// Whether `key`'s ledger is checked out to be synced (see ``checkOutForSync(task:where:)``).
    public func isSyncing(_ key: LedgerKey) -> Bool { syncing[key] != nil }

    /// The task's ledgers checked out to be synced.
    public func syncingLedgers(of task: TaskID) -> [LedgerKey] { syncing.keys.filter { $0.task == task }.sorted() }

    /// Resets a task's ledgers to a recorded position (restoring a checkpoint): every ledger of the task is dropped,
    /// and each recorded dataset epoch starts over from its records (done shards stay done, started ones resume at
    /// their cursor), placed on the current members. Epochs the position does not name start fresh when asked for.
    /// Datasets that are no longer registered are skipped.
    public mutating func rewind(
        task: TaskID, to position: [LedgerKey: [ShardRecord]], members: [WorkerID], membershipEpoch: UInt64,
        now: Moment
    ) -> [DataDirective] {
        var changes: [DataChange] = []
        for key in Set(ledgers.keys).union(syncing.keys).sorted() where key.task == task {
            ledgers[key] = nil
            syncing[key] = nil
            headers[key] = nil
            sinceSnapshot[key] = nil
            changes.append(.ledgerDropped(key))
        }
        for key in position.keys.sorted() where key.task == task {
            guard let dataset = datasets[key.dataset] else { continue }
            let records = (position[key] ?? []).filter { (0..<dataset.spec.shardCount).contains($0.shard) }
            let (ledger, _) = ShardLedger.restored(
                spec: dataset.spec, epoch: key.epoch, initialMembers: members, initialMembershipEpoch: membershipEpoch,
                config: config, deltas: [.records(records)], lastMembers: members,
                lastMembershipEpoch: membershipEpoch,
                members: members, membershipEpoch: membershipEpoch)
            let header = LedgerHeader(
                key: key, initialMembers: members, initialMembershipEpoch: membershipEpoch,
                createdAtMillis: now.unixMillis)
            ledgers[key] = ledger
            headers[key] = header
            sinceSnapshot[key] = (0, 0)
            changes.append(.ledgerCreated(header))
            if !records.isEmpty { changes.append(.shardsChanged(key, records.map { ledger.record(of: $0.shard) })) }
            changes.append(.ledgerSnapshot(key, ledger.snapshot()))
        }
        return changes.map(DataDirective.persist) + position.keys.sorted().map(DataDirective.progressChanged)
    }

    // MARK: Queries

    /// Every registered dataset, by name.
    public var registered: [DatasetRecord] { datasets.values.sorted { $0.spec.name < $1.spec.name } }

    /// The spec of a dataset.
    public func spec(named name: String) -> DatasetSpec? { datasets[name]?.spec }

    /// The tasks that have retained ledgers.
    public var tasks: Set<TaskID> { Set(ledgers.keys.map(\.task)).union(syncing.keys.map(\.task)) }

    /// Number of retained ledgers.
    public var ledgerCount: Int { ledgers.count + syncing.count }

    /// A retained ledger, installed or checked out to be synced (as it was then).
    private func retained(_ key: LedgerKey) -> ShardLedger? { ledgers[key] ?? syncing[key] }

    /// The started shards of every retained ledger of a task (or only those `owner` holds), by ledger.
    public func startedShards(of task: TaskID, ownedBy owner: WorkerID? = nil) -> [LedgerKey: [ShardRecord]] {
        var started: [LedgerKey: [ShardRecord]] = [:]
        for (key, ledger) in ledgers.merging(syncing, uniquingKeysWith: { installed, _ in installed })
        where key.task == task {
            let records = ledger.startedShards(ownedBy: owner)
            if owner == nil || !records.isEmpty { started[key] = records }
        }
        return started
    }

    /// Summaries of every retained ledger of a dataset, sorted by task then epoch.
    public func summaries(of dataset: String) -> [LedgerSummary] {
        Set(ledgers.keys).union(syncing.keys).filter { $0.dataset == dataset }.sorted().compactMap { key in
            retained(key).map { summary(key, $0) }
        }
    }

    /// One ledger's counts (no per-shard work: cheap enough for every progress report), or nil when it is not
    /// retained.
    public func counts(of key: LedgerKey) -> LedgerCounts? {
        retained(key).map { ledger in
            LedgerCounts(
                done: ledger.doneCount, inProgress: ledger.inProgressCount, total: ledger.shardCount,
                committedSamples: ledger.committedSamples, totalSamples: ledger.spec.totalSamples)
        }
    }

    // MARK: Internals

    /// Creates the epoch's ledger if needed. At most ``retainedEpochs`` epochs of a (task, dataset) may be unfinished
    /// at once (a client cannot make the coordinator hold arbitrarily many ledgers); finished ones beyond the
    /// ``retainedEpochs`` newest are dropped. An unfinished ledger is never dropped.
    private mutating func ensureLedger(
        _ key: LedgerKey, members: [WorkerID], membershipEpoch: UInt64, now: Moment
    ) throws(CoreError) -> [DataChange] {
        guard let spec = try ledgerToCreate(key) else { return [] }
        let ledger = ShardLedger(
            spec: spec, epoch: key.epoch, members: members, membershipEpoch: membershipEpoch, config: config)
        return install(ledger, key: key, now: now)
    }

    /// The spec of `key`'s dataset when its ledger does not exist yet and may be created now (see
    /// ``install(_:key:members:membershipEpoch:now:)``: a shell builds big ledgers off its actor, then installs them);
    /// nil when it exists.
    ///
    /// Ledgers being `built` count as unfinished epochs, as installed ones do: a client asking for many new epochs at
    /// once must not start more builds (each holding every shard's placement) than it could ever install.
    ///
    /// - Throws: `notFound` for an unknown dataset; `failedPrecondition` for an epoch that fell out of the retention or
    ///   when too many epochs are unfinished; `invalidArgument` for an epoch too far ahead.
    public func ledgerToCreate(_ key: LedgerKey, building: some Collection<LedgerKey> = [LedgerKey]())
        throws(CoreError) -> DatasetSpec?
    {
        guard let dataset = datasets[key.dataset] else { throw Self.unknown(key.dataset) }
        guard retained(key) == nil else { return nil }
        let inFlight = building.filter {
            $0 != key && $0.task == key.task && $0.dataset == key.dataset && retained($0) == nil
        }
        let siblings =
            (Set(ledgers.keys).union(syncing.keys).filter { $0.task == key.task && $0.dataset == key.dataset }
            + inFlight).sorted()
        if siblings.count >= Self.retainedEpochs, let oldest = siblings.first, key.epoch < oldest.epoch {
            throw CoreError(
                .failedPrecondition,
                "epoch \(key.epoch) of \(key.dataset) in task \(key.task) is older than the retained epochs "
                    + "(\(siblings.map { String($0.epoch) }.joined(separator: ", "))): its ledger is gone")
        }
        if let newest = siblings.last?.epoch, key.epoch > newest, key.epoch - newest > Self.maxEpochLead {
            throw CoreError.invalid(
                "epoch",
                "must be at most \(Self.maxEpochLead) beyond the newest epoch \(newest) of \(key.dataset) in task "
                    + "\(key.task) (epochs count up from there; an operator can drop a ledger that is in the way with "
                    + "DELETE /api/datasets/{name}/ledgers/{task}/{epoch})", got: String(key.epoch))
        }
        let unfinished = siblings.filter { retained($0).map { !$0.isComplete } ?? true }
        guard unfinished.count < Self.retainedEpochs else {
            throw CoreError(
                .failedPrecondition,
                "\(unfinished.count) epochs of \(key.dataset) in task \(key.task) are unfinished "
                    + "(\(unfinished.map { String($0.epoch) }.joined(separator: ", "))): finish one before starting "
                    + "epoch \(key.epoch), or drop one no job will finish with "
                    + "DELETE /api/datasets/\(key.dataset)/ledgers/\(key.task)/<epoch>")
        }
        return dataset.spec
    }

    /// Installs a new ledger of `key` that was built (``ShardLedger/init(spec:epoch:members:membershipEpoch:config:)``)
    /// for the spec ``ledgerToCreate(_:)`` returned, then brings it up to date with the task's current `members`
    /// (they may have changed while it was built). Nothing happens when the ledger exists by now.
    ///
    /// - Throws: what ``ledgerToCreate(_:)`` throws, as things stand now; `failedPrecondition` when the dataset's
    ///   spec changed meanwhile.
    public mutating func install(
        _ ledger: ShardLedger, key: LedgerKey, members: [WorkerID], membershipEpoch: UInt64, now: Moment
    ) throws(CoreError) -> [DataDirective] {
        guard let spec = try ledgerToCreate(key) else { return [] }
        guard spec == ledger.spec, ledger.epoch == key.epoch else {
            throw CoreError(
                .failedPrecondition, "dataset \(key.dataset) changed while its ledger was built: ask again")
        }
        var changes = install(ledger, key: key, now: now)
        if ledger.initialMembers != members || ledger.initialMembershipEpoch != membershipEpoch {
            changes += snapshotIfDue(
                key, after: Self.changes(key, ledgers[key]!.syncMembers(members, membershipEpoch: membershipEpoch)))
        }
        return Self.directives(changes, progressOf: [key])
    }

    /// Installs a new ledger (``ledgerToCreate(_:)`` said it may be) and drops finished ones beyond the retention.
    private mutating func install(_ ledger: ShardLedger, key: LedgerKey, now: Moment) -> [DataChange] {
        let siblings = Set(ledgers.keys).union(syncing.keys).filter { $0.task == key.task && $0.dataset == key.dataset }
            .sorted()
        let header = LedgerHeader(
            key: key, initialMembers: ledger.initialMembers, initialMembershipEpoch: ledger.initialMembershipEpoch,
            createdAtMillis: now.unixMillis)
        ledgers[key] = ledger
        headers[key] = header
        sinceSnapshot[key] = (0, 0)
        // The snapshot spares a restart the initial placement (it replaces nothing: the ledger is new).
        var changes: [DataChange] = [.ledgerCreated(header), .ledgerSnapshot(key, ledger.snapshot())]
        var count = siblings.count + 1
        for old in siblings where count > Self.retainedEpochs && ledgers[old]?.isComplete == true {
            ledgers[old] = nil
            headers[old] = nil
            sinceSnapshot[old] = nil
            changes.append(.ledgerDropped(old))
            count -= 1
        }
        return changes
    }

    /// `changes` of `key`'s ledger, followed by a snapshot of it when the changes written since the last one weigh
    /// half a snapshot, or number more than ``snapshotAlwaysAfterRows(shards:)`` rows: the database then holds at most about
    /// one and a half snapshots' worth, writing snapshots costs at most about twice what the changes cost, and a
    /// restart reads a snapshot and less than half a snapshot's worth of changes.
    private mutating func snapshotIfDue(_ key: LedgerKey, after changes: [DataChange]) -> [DataChange] {
        guard let ledger = ledgers[key], !changes.isEmpty else { return changes }
        var weight = sinceSnapshot[key] ?? (0, 0)
        let added = Self.weight(changes)
        weight.rows += added.rows
        weight.bytes += added.bytes
        guard
            weight.rows > Self.snapshotAlwaysAfterRows(shards: ledger.shardCount)
                || weight.bytes * 2 >= Self.snapshotBytes(ledger)
        else {
            sinceSnapshot[key] = weight
            return changes
        }
        sinceSnapshot[key] = (0, 0)
        return changes + [.ledgerSnapshot(key, ledger.snapshot())]
    }

    /// A ledger gets a new snapshot beyond this many rows since the last one, however small they are: 4,096, or one
    /// row per 256 shards for big ledgers (a snapshot of 2^24 shards weighs tens of megabytes: writing one every
    /// 4,096 reports would cost a hundred times the reports themselves).
    static func snapshotAlwaysAfterRows(shards: Int) -> Int { max(4_096, shards / 256) }

    /// About what a ledger's snapshot weighs: a byte or two a shard for the positions (two with hundreds of members),
    /// the done bitmap, and the slots.
    private static func snapshotBytes(_ ledger: ShardLedger) -> Int {
        let members = ledger.remainingPerMember().count
        return ledger.shardCount * (members > 64 ? 2 : 1) + ledger.shardCount / 8 + 64 * (members + 1)
    }

    /// The rows and estimated bytes these changes write (a record a few bytes, a moved shard one to three, a row's
    /// own overhead in SQLite a few dozen).
    private static func weight(_ changes: [DataChange]) -> (rows: Int, bytes: Int) {
        changes.reduce((0, 0)) { total, change in
            switch change {
            case .shardsChanged(_, let records): (total.0 + 1, total.1 + 4 * records.count + 40)
            case .shardsMoved(_, let move): (total.0 + 1, total.1 + 2 * move.shards.count + 40)
            default: total
            }
        }
    }

    private func progress(_ ledger: ShardLedger) -> LedgerProgress {
        LedgerProgress(done: ledger.doneCount, total: ledger.shardCount)
    }

    /// The changes to persist and, when there are any, the progress of `keys` as changed.
    private static func directives(_ changes: [DataChange], progressOf keys: [LedgerKey]) -> [DataDirective] {
        changes.isEmpty ? [] : changes.map(DataDirective.persist) + keys.map(DataDirective.progressChanged)
    }

    private static func changes(_ key: LedgerKey, _ directives: [ShardLedger.Directive]) -> [DataChange] {
        directives.map { directive in
            switch directive {
            case .persist(let records): .shardsChanged(key, records)
            case .moved(let move): .shardsMoved(key, move)
            case .membersChanged(let members, let epoch): .ledgerMembers(key, members, membershipEpoch: epoch)
            }
        }
    }

    private func summary(_ key: LedgerKey, _ ledger: ShardLedger) -> LedgerSummary {
        LedgerSummary(
            key: key, done: ledger.doneCount, total: ledger.shardCount,
            remainingPerMember: ledger.remainingPerMember(), unowned: ledger.unowned,
            inProgress: ledger.inProgressCount, committedSamples: ledger.committedSamples,
            totalSamples: ledger.spec.totalSamples)
    }

    private static func unknown(_ dataset: String) -> CoreError {
        CoreError(
            .notFound,
            "dataset \(dataset) is not registered: register it first (DatasetRegistry.register in the Python SDK, the "
                + "RegisterDataset call on gRPC)")
    }

    private static func noLedger(_ key: LedgerKey) -> CoreError {
        CoreError(.notFound, "no ledger for \(key): call GetShardAssignment for that epoch first")
    }
}

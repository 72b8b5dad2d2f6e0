public import Checkpoint
import DataShard
public import Logging
public import RuntimeCore
public import Storage

/// The coordinator's engine: owns the pure state machines, carries out their directives (persist through the
/// write-behind queue, push to session streams, log), and answers the gRPC and HTTP edges.
///
/// Heartbeats only touch memory. Calls that change durable state return after their change is committed.
public actor CoordinatorEngine {
    /// The failure detector's timeouts.
    public nonisolated let membershipConfig: MembershipConfig
    /// Open worker session streams.
    public nonisolated let sessions: SessionRegistry
    /// Session streams whose heartbeat waits for this actor (see ``hand(_:)``).
    nonisolated let heartbeatInbox = HeartbeatInbox()
    /// Barrier streams, ended at shutdown once their parked calls were answered.
    public nonisolated let barrierStreams = ShutdownLatch()
    /// The write-behind queue durable changes go through.
    public nonisolated let queue: WriteBehindQueue
    /// When each worker's latest heartbeat arrived, recorded before it queues for this actor (see ``heard(_:)``).
    public nonisolated let liveness = LivenessBoard()
    /// How far behind the coordinator's threads run, measured by probes (the engine service runs them): the failure
    /// detector extends its timeouts by it.
    public nonisolated let schedulingLag = SchedulingLag()
    /// When the engine started.
    public nonisolated let startedAt: Moment
    /// Counters, timers and gauges for `/metrics` and `/api/metrics`.
    public nonisolated let metrics: CoordinatorMetrics
    /// The live updates of `/api/events` (see CoordinatorEngine+Live.swift).
    public nonisolated let events: EventBus
    /// Runs the side effects directives call for (manifest writes, deletes, pushes, sweeps); the engine service runs
    /// it, so shutdown ends them.
    public nonisolated let effects: EffectRunner
    /// Step rates, histories and coalescing for the dashboard (see CoordinatorEngine+Live.swift).
    var live = LiveState()

    var membership: Membership
    /// Registered datasets and the recent epochs' shard ledgers.
    var catalog: DatasetCatalog
    /// New ledgers being built off this actor, each installed by its task when built (see ``awaitLedger(_:spec:)``).
    var ledgerBuilds: [LedgerKey: Task<Void, any Error>] = [:]
    /// The durable data plane (datasets and ledgers) being read and rebuilt off this actor after a restart; nil once
    /// installed (see CoordinatorEngine+DataLoading.swift).
    var dataLoading: Task<(DatasetCatalog, [DataDirective]), any Error>?
    /// Why the data plane could not be loaded, if it could not: every data call answers with it.
    var dataLoadFailure: CoreError?
    /// Ledgers of at least this many shards are synced with membership changes off this actor (see
    /// ``startSync(_:_:members:epoch:)``).
    let offActorSyncShards: Int
    /// Ledgers of tasks with at least this many members are too (``syncsOffActor(shards:members:)``).
    let offActorSyncMembers: Int
    /// When the engine was created, for the log line that says how long loading the data plane took.
    let createdAt = ContinuousClock.now
    /// Every task's barriers, and the calls parked on their open generations.
    var barriers: BarrierTable
    var barrierWaiters: [BarrierID: [BarrierWaiter]] = [:]
    var barrierWaitTime = LatencyHistogram()
    var barrierReleaseLatency = LatencyHistogram()
    var barriersReleased = 0
    var barriersFailed = 0
    /// Every task's checkpoints, the store their objects live in, and the part reports waiting for a commit.
    var checkpoints: CheckpointCatalog
    nonisolated let checkpointStore: (any BlobStore)?
    var checkpointWaiters: [CheckpointID: [CheckedContinuation<CheckpointRecord, any Error>]] = [:]
    /// How often the checkpoint store is swept for what aborted checkpoints and crashed writers left behind.
    let checkpointSweepInterval: Duration
    /// When the last sweep started; nil until the first tick, which sweeps at once: a crash between a retirement
    /// becoming durable and its objects' deletion must not leave a retired checkpoint's manifest for a whole interval.
    var lastCheckpointSweep: Duration?
    /// Every task's lifecycle (created, running, stopping, ended).
    var tasks: TaskTable
    /// The world size a registration in progress asks for, by task: a task its join creates takes it.
    private var joinHints: [TaskID: WorldSizeHint] = [:]
    /// Set once the coordinator shuts down: no call parks any more.
    var shuttingDown = false
    static let shuttingDownError = CoreError(
        .unavailable, "the coordinator is shutting down: retry once it is back", reason: .shuttingDown)
    /// Per task, the checkpoint its data ledgers were last reset to, and at which membership epoch.
    var dataRestoredFrom: [TaskID: (CheckpointID, UInt64)] = [:]
    /// Per task and queue lane, the ticket of the latest durable change that concerns it. No view of the task leaves
    /// the coordinator (reply, acknowledgement, push) before its membership lane's ticket is committed: a worker must
    /// never see a membership epoch that a crash could take back and hand out again for a different membership. Data
    /// and checkpoint replies wait for both lanes (``settle(_:)``); views only for the membership lane
    /// (``settleView(_:)``), so one task's big ledger write never holds heartbeats up.
    var latestChange: [TaskID: [WriteBehindQueue.Lane: WriteBehindQueue.Ticket]] = [:]
    /// Reasons of the membership changes waiting to be pushed, per task; one push carries them all.
    private var pendingPushes: [TaskID: [String]] = [:]
    /// The lag the failure detector's last run extended its timeouts by (``schedulingLag``), for `/metrics`.
    var lastLag = Duration.zero
    /// When each task's members were last pushed a view (monotonic), for ``pushSpacing(members:)``.
    private var lastPush: [TaskID: Duration] = [:]
    /// Per task, why its membership last changed and the epoch it changed to: every view at that epoch says why,
    /// whether it reaches the worker as a push or as a heartbeat reply that overtook the push.
    private var lastChange: [TaskID: (epoch: UInt64, reason: String)] = [:]
    let now: @Sendable () -> Moment
    let logger: Logger
    /// Makes the secret a registration hands out (``WorkerSecret/issue()``; tests may pass their own).
    let issueSecret: @Sendable () -> String

    /// Creates an engine from the durable state read at start-up. Restored members get one full dead timeout of grace.
    ///
    /// Shard ledgers are reconciled with the restored membership: shards of workers that departed before their
    /// moves were written move now. With `loadingData`, the data plane is read by it and rebuilt off this actor
    /// instead of from `data`: the engine answers at once, and data calls wait for it (see
    /// CoordinatorEngine+DataLoading.swift).
    public init(
        membershipConfig: MembershipConfig, restoring persisted: PersistedMembership,
        data: PersistedData = PersistedData(), loadingData: (@Sendable () throws -> PersistedData)? = nil,
        barrierMaxPayloadBytes: Int = 64 << 20, offActorSyncShards: Int = CoordinatorEngine.defaultOffActorSyncShards,
        offActorSyncMembers: Int = CoordinatorEngine.defaultOffActorSyncMembers,
        checkpoints checkpointSettings: CheckpointSettings = CheckpointSettings(),
        checkpointStore: (any BlobStore)? = nil,
        restoringCheckpoints: [CheckpointRecord] = [], restoringTasks: [TaskRecord] = [],
        metrics: CoordinatorMetrics = CoordinatorMetrics(), events: EventBus = EventBus(), queue: WriteBehindQueue,
        sessions: SessionRegistry = SessionRegistry(), effects: EffectRunner = EffectRunner(),
        issueSecret: @escaping @Sendable () -> String = WorkerSecret.issue,
        now: @escaping @Sendable () -> Moment, logger: Logger
    ) {
        self.issueSecret = issueSecret
        self.offActorSyncShards = offActorSyncShards
        self.offActorSyncMembers = offActorSyncMembers
        let start = now()
        var checkpoints = CheckpointCatalog(
            timeout: checkpointSettings.timeout, retention: checkpointSettings.retention,
            maxPendingPerTask: checkpointSettings.maxPending, restoring: restoringCheckpoints, now: start.monotonic)
        let resumedCommits = checkpoints.resumeCommits()
        self.checkpoints = checkpoints
        self.tasks = TaskTable(restoring: restoringTasks)
        self.metrics = metrics
        self.events = events
        self.effects = effects
        self.checkpointStore = checkpointStore
        self.checkpointSweepInterval = checkpointSettings.sweepInterval
        self.membershipConfig = membershipConfig
        self.barriers = BarrierTable(maxPayloadBytes: barrierMaxPayloadBytes)
        let membership = Membership(
            config: membershipConfig, restoring: persisted.records, epochs: persisted.epochs, now: start)
        self.membership = membership
        let (catalog, reconciled) = DatasetCatalog.restored(
            datasets: data.datasets, ledgers: data.ledgers,
            membership: { (membership.members(of: $0), membership.epoch(of: $0)) })
        self.catalog = catalog
        if let loadingData {
            dataLoading = Task {
                try await OffPool.run("data-loading") {
                    let data = try loadingData()
                    // Reconciled with the membership as restored; changes since are applied when it is installed.
                    return DatasetCatalog.restored(
                        datasets: data.datasets, ledgers: data.ledgers,
                        membership: { (membership.members(of: $0), membership.epoch(of: $0)) })
                }
            }
        }
        for change in reconciled.changes {
            let ticket = queue.enqueue(.data(change))
            if let task = change.task, let lane = ticket.lane { latestChange[task, default: [:]][lane] = ticket }
        }
        self.queue = queue
        self.sessions = sessions
        self.now = now
        self.startedAt = start
        self.logger = logger
        if !resumedCommits.isEmpty {
            logger.info("resuming checkpoint commits (or forgetting old records) after the restart")
            effects.submit { await self.carryOut(resumedCommits) }
        }
        if loadingData != nil { Task { await self.finishLoadingData() } }
        let members = persisted.records.filter { $0.standing == .member }.count
        if !persisted.records.isEmpty {
            logger.info(
                "restored membership: every member gets \(membershipConfig.deadAfter) of grace to heartbeat",
                metadata: ["workers": "\(persisted.records.count)", "members": "\(members)"])
        }
    }

    // MARK: Membership

    /// Registers a worker; returns once its membership is durable. (The secret it was given is dropped: for callers
    /// inside the coordinator, which do not act as the worker afterwards.)
    public func register(_ spec: WorkerSpec, hint: WorldSizeHint = WorldSizeHint()) async throws -> MembershipView {
        try await register(spec, hint: hint, presenting: nil).view
    }

    /// Registers a worker; returns its view and its secret once its membership is durable.
    ///
    /// A worker that is not a member of the task yet is admitted only below the task's world size (`hint`: the world
    /// size it asks for, used when its registration creates the task). `presented` is the secret the caller sent:
    /// registering a live member's id needs it (see ``Membership/onRegister(_:secret:presented:now:)``). The secret
    /// returned is a new one when the worker joined or restarted, else the one it presented.
    public func register(_ spec: WorkerSpec, hint: WorldSizeHint = WorldSizeHint(), presenting presented: String?)
        async throws -> (view: MembershipView, secret: String)
    {
        let issued = issueSecret()
        let issuedDigest = WorkerSecret.digest(issued)
        if !membership.isMember(spec.id, of: spec.taskID) {
            try tasks.admit(spec.taskID, members: membership.members(of: spec.taskID).count, hint: hint)
        }
        let (view, directives) = try membership.onRegister(
            spec, secret: issuedDigest, presented: presented.map(WorkerSecret.digest), now: now())
        let secret = membership.secretDigest(of: spec.id) == issuedDigest ? issued : (presented ?? "")
        // Read by the task lifecycle while the join's directives are carried out (a task the join creates takes it).
        joinHints[spec.taskID] = hint
        carryOut(directives)
        joinHints[spec.taskID] = nil
        // Also covers a repeated registration, which must not be acknowledged before the first one is durable.
        try await settleView(spec.taskID)
        // The worker could not heartbeat while it waited for this answer: its silence starts now.
        let answered = now()
        carryOut(membership.onSignOfLife(spec.id, at: answered.monotonic, now: answered))
        return (outgoing(membership.view(of: spec.id) ?? view), secret)
    }

    /// Checks that a call naming `id` carries that worker's `secret` (see ``Membership/authenticate(_:presented:)``):
    /// every handler of a call that acts as a worker calls this first.
    public func authenticate(_ id: WorkerID, secret: String?) throws(CoreError) {
        try membership.authenticate(id, presented: secret.map(WorkerSecret.digest))
    }

    /// A heartbeat of `worker` arrived: recorded on the ``liveness`` board at once, without waiting for this actor.
    /// The gRPC handlers call this before they hand the heartbeat to the engine.
    ///
    /// - Returns: the arrival moment (monotonic), to pass on with the heartbeat.
    public nonisolated func heard(_ worker: WorkerID) -> Duration {
        let moment = now().monotonic
        liveness.record(worker, at: moment)
        return moment
    }

    /// Records a heartbeat (memory only) and returns the worker's current view.
    ///
    /// Liveness is recorded first (as of `arrivedAt`, when the caller stamped it with ``heard(_:)``): if the disk is
    /// failing, the reply fails (UNAVAILABLE) but the worker is not declared dead for the coordinator's trouble. The
    /// reply waits for the task's membership changes to be durable, not for its data ledgers' writes.
    public func heartbeat(
        _ id: WorkerID, step: Int64, metrics: [String: Double], arrivedAt: Duration? = nil
    ) async throws -> MembershipView {
        let view = try record(id, step: step, metrics: metrics, arrivedAt: arrivedAt)
        try await settleView(view.taskID)
        return outgoing(membership.view(of: id) ?? view)
    }

    /// Hands a session stream whose heartbeat waits (see ``SessionChannel``) to this actor, without waiting for it:
    /// the heartbeats of the streams handed over meanwhile are taken in one turn of the actor (``takeHeartbeats()``),
    /// each recorded like ``heartbeat(_:step:metrics:arrivedAt:)`` and acknowledged on its stream.
    nonisolated func hand(_ channel: SessionChannel) {
        if heartbeatInbox.add(channel) { Task { await self.takeHeartbeats() } }
    }

    /// How many streams' heartbeats the actor takes before it lets other calls in.
    static let heartbeatBatch = 256

    /// Takes the heartbeats waiting in ``heartbeatInbox`` until there are none, letting other calls in after each
    /// ``heartbeatBatch``.
    func takeHeartbeats() async {
        // Counted across takes: under a steady load each take may find fewer than a batch, and the drain goes on.
        var sinceYield = 0
        while true {
            let waiting = heartbeatInbox.take()
            if waiting.isEmpty { return }
            for channel in waiting {
                if sinceYield == Self.heartbeatBatch {
                    sinceYield = 0
                    await Task.yield()
                }
                takeHeartbeat(from: channel)
                sinceYield += 1
            }
        }
    }

    /// A heartbeat that arrived on a session stream: recorded like ``heartbeat(_:step:metrics:arrivedAt:)``, and
    /// acknowledged on its stream (from this actor, so acknowledgements and pushes reach the stream in the order they
    /// were made), the stream attached to its worker on its first heartbeat. A worker that is not known ends the
    /// stream with the error. While the task's latest change cannot be written, the heartbeat still counts but is not
    /// acknowledged: the stream stays open and the next one is answered.
    private func takeHeartbeat(from channel: SessionChannel) {
        guard let (pending, token) = channel.take() else { return }
        let beat = pending.heartbeat
        let recorded: MembershipView
        do {
            recorded = try record(beat.workerID, step: beat.step, metrics: beat.metrics, arrivedAt: pending.arrivedAt)
        } catch {
            channel.refuse(error)
            return
        }
        if token == nil {
            // No token: the registry closed the channel (shutting down).
            guard let token = sessions.attach(beat.workerID, channel: channel) else {
                release(channel, acknowledging: nil)
                return
            }
            // The stream's handler returned meanwhile: it is not to stay attached.
            if !channel.attach(beat.workerID, token: token) { sessions.detach(beat.workerID, token: token) }
        }
        if isSettled(recorded.taskID, lanes: [.membership]) {
            // Recorded in this turn of the actor: nothing changed the membership since, so its view is current.
            release(channel, acknowledging: SessionUpdate(kind: .heartbeatAck, view: outgoing(recorded)))
            return
        }
        Task {
            do {
                try await settleView(recorded.taskID)
            } catch {
                release(channel, acknowledging: nil)
                return
            }
            acknowledge(beat.workerID, recorded, on: channel)
        }
    }

    /// Acknowledges a heartbeat recorded before the engine waited: with the worker's view as of now.
    private func acknowledge(_ id: WorkerID, _ recorded: MembershipView, on channel: SessionChannel) {
        let view = outgoing(membership.view(of: id) ?? recorded)
        release(channel, acknowledging: SessionUpdate(kind: .heartbeatAck, view: view))
    }

    /// The engine is done with the heartbeat it took from `channel`; one that arrived meanwhile is handed on if it may
    /// go now.
    private nonisolated func release(_ channel: SessionChannel, acknowledging acknowledgement: SessionUpdate?) {
        if channel.done(acknowledging: acknowledgement) { hand(channel) }
    }

    /// A view as it leaves the coordinator: with the reason of the task's last membership change (if the view is at
    /// that epoch), and STOP for a member of a task that is stopping.
    func outgoing(_ view: MembershipView) -> MembershipView {
        var outgoing = view
        if view.reason.isEmpty, let change = lastChange[view.taskID], change.epoch == view.epoch {
            outgoing.reason = change.reason
        }
        if view.command == .proceed, tasks.isStopping(view.taskID) {
            outgoing.command = .stop
            outgoing.reason = "task \(view.taskID) is stopping"
        }
        return outgoing
    }

    /// Records a heartbeat in the membership; returns the view as of now (possibly not durable yet).
    private func record(
        _ id: WorkerID, step: Int64, metrics: [String: Double], arrivedAt: Duration?
    ) throws(CoreError) -> MembershipView {
        let moment = now()
        let (view, directives) = try membership.onHeartbeat(
            id, step: step, metrics: metrics, arrivedAt: arrivedAt, now: moment)
        self.metrics.recordHeartbeat(at: moment.monotonic)
        observeHeartbeat(id, view: view, step: step, metrics: metrics, at: moment)
        if !directives.isEmpty { carryOut(directives) }
        return view
    }

    /// Deregisters a worker (`failed`: it leaves because it failed); returns the task's epoch once the leave is
    /// durable.
    public func deregister(_ id: WorkerID, reason: String, failed: Bool = false) async throws -> UInt64 {
        let (epoch, directives) = try membership.onDeregister(id, failed: failed, now: now())
        if !directives.isEmpty {
            if failed {
                logger.warning(
                    "worker failed and deregistered", metadata: ["worker_id": "\(id)", "reason": "\(reason)"])
            } else {
                logger.info("worker deregistered", metadata: ["worker_id": "\(id)", "reason": "\(reason)"])
            }
            carryOut(directives)
        }
        if let task = membership.task(of: id) { try await settleView(task) }
        return epoch
    }

    /// Runs the failure detector once (the engine service calls this every tick), counting the heartbeats that
    /// arrived since the last tick (``liveness``) whether or not the engine has handled them yet, with its timeouts
    /// extended by how far behind the coordinator runs (``schedulingLag``). Returns how long
    /// until a member can next be declared dead (``untilNextDeath``), so that the engine service learns it without
    /// queueing for the actor a second time.
    ///
    /// - Parameter scheduledAt: when the run was due (the engine service's schedule): how long it waited for this
    ///   actor counts in the lag.
    @discardableResult
    public func tick(scheduledAt: ContinuousClock.Instant? = nil) -> Duration? {
        let moment = now()
        judgeLiveness(at: moment, scheduledAt: scheduledAt)
        carryOut(barriers.onTick(now: moment.monotonic))
        carryOut(checkpoints.onTick(now: moment.monotonic))
        observeTick(moment)
        if lastCheckpointSweep.map({ moment.monotonic - $0 >= checkpointSweepInterval }) ?? true {
            lastCheckpointSweep = moment.monotonic
            effects.submit { await self.sweepCheckpointStore() }
        }
        return untilNextDeath()
    }

    /// How long until a member can next be declared dead (``Membership/nextDeathDue``), as of the last tick; nil
    /// when there is no member. The engine service runs the failure detector then (``checkDeaths()``) when it is
    /// before the next regular tick (``DetectorSchedule``).
    func untilNextDeath() -> Duration? {
        membership.nextDeathDue.map { $0 - now().monotonic }
    }

    /// Runs the failure detector alone, between regular ticks, at a member's death deadline: the rest of the tick
    /// (barrier and checkpoint timeouts, metrics events paced per tick) keeps its own pace. Returns
    /// ``untilNextDeath()``, as ``tick()`` does.
    @discardableResult
    public func checkDeaths(scheduledAt: ContinuousClock.Instant? = nil) -> Duration? {
        judgeLiveness(at: now(), scheduledAt: scheduledAt)
        return untilNextDeath()
    }

    /// The failure detector's run: the heartbeats that arrived meanwhile, and the timeouts extended by the lag.
    private func judgeLiveness(at moment: Moment, scheduledAt: ContinuousClock.Instant?) {
        let waited = scheduledAt.map { ContinuousClock.now - $0 } ?? .zero
        let lag = schedulingLag.take(now: moment.monotonic, engineWait: waited)
        lastLag = lag
        carryOut(membership.onTick(now: moment, arrivals: liveness.take(), lag: lag))
    }

    /// The coordinator is shutting down: calls parked at barriers and checkpoint commits fail now with UNAVAILABLE
    /// (the SDK retries against the restarted coordinator) instead of holding the shutdown until their timeouts.
    public func failParkedCalls() {
        shuttingDown = true
        let error = Self.shuttingDownError
        for waiters in barrierWaiters.values { Self.deliver(.failure(error), to: waiters) }
        barrierWaiters = [:]
        for waiter in checkpointWaiters.values.joined() { waiter.resume(throwing: error) }
        checkpointWaiters = [:]
    }

    // MARK: Queries

    /// Every known worker, for `/api/workers`.
    public func workers() -> [WorkerSnapshot] { membership.workers(now: now()) }

    /// Time since the engine started.
    public nonisolated var uptime: Duration { now().monotonic - startedAt.monotonic }

    /// Tasks and worker counts, for `/api/status`.
    public func status() -> EngineStatus {
        EngineStatus(
            uptime: uptime, tasks: membership.tasks(), health: membership.healthCounts(),
            sessions: sessions.count)
    }

    // MARK: Directives

    /// Carries out membership directives: durable changes are queued; a membership change is handed to every core
    /// that follows it (barriers, checkpoints, data ledgers, the task lifecycle), then pushed to the task's members
    /// once it is durable.
    private func carryOut(_ directives: [Membership.Directive]) {
        for directive in directives {
            switch directive {
            case .persist(let change):
                let ticket = queue.enqueue(.membership(change))
                let tasks = Set(change.epochs.keys).union(change.upserted.map(\.spec.taskID))
                for task in tasks { noteChange(ticket, of: task) }
            case .membershipChanged(let task, let members, let epoch, let cause):
                let reason = cause.description
                lastChange[task] = (epoch, reason)
                carryOut(barriers.onMembershipChange(task: task, members: members, reason: reason))
                carryOut(checkpoints.onMembershipChange(task: task, members: members, reason: reason))
                let offActor = catalog.checkOutForSync(task: task) { _, ledger in
                    syncsOffActor(shards: ledger.shardCount, members: members.count)
                }
                for (key, ledger) in offActor {
                    // To this change's members: a restart is two changes carried out together (without the worker,
                    // then with it again), and the ledger must take the first too (the old process's leases end).
                    startSync(key, ledger, members: members, epoch: epoch)
                }
                carryOut(catalog.onMembershipChange(task: task, members: members, membershipEpoch: epoch))
                carryOut(
                    tasks.onMembershipChange(
                        task, members: members.count, cause: cause, hint: joinHints[task] ?? WorldSizeHint(),
                        now: now()))
                publishTaskEvent(task)
                schedulePush(task, reason: reason)
            case .log(let event):
                log(event)
                publishWorkerEvent(event)
            }
        }
    }

    /// Carries out data directives: changes are queued (a ledger's count as changes of its task: see
    /// ``settle(_:)``), progress changes become `dataset_progress` events.
    func carryOut(_ directives: [DataDirective]) {
        for directive in directives {
            switch directive {
            case .persist(let change):
                let ticket = queue.enqueue(.data(change))
                if let task = change.task { noteChange(ticket, of: task) }
            case .progressChanged(let key):
                noteDatasetProgress(key)
            }
        }
    }

    /// Carries out task directives: records are queued (they count as changes of the task), pushes scheduled.
    func carryOut(_ directives: [TaskTable.Directive]) {
        for directive in directives {
            switch directive {
            case .persist(let record):
                noteChange(queue.enqueue(.task(record)), of: record.taskID)
                publishTaskEvent(record.taskID)
            case .push(let task, let reason):
                schedulePush(task, reason: reason)
            case .ended(let record):
                logger.info(
                    "task ended",
                    metadata: [
                        "task_id": "\(record.id)", "status": "\(record.status.rawValue)",
                        "reason": "\(record.reason ?? "")",
                    ])
            }
        }
    }

    /// Records `ticket` as the latest change of `task` in its lane.
    func noteChange(_ ticket: WriteBehindQueue.Ticket, of task: TaskID) {
        guard let lane = ticket.lane else { return }
        latestChange[task, default: [:]][lane] = ticket
    }

    /// Waits until every durable change concerning `task` is committed. On return (with no suspension after it) the
    /// task's in-memory state is exactly what is on disk.
    func settle(_ task: TaskID) async throws {
        try await settle(task, lanes: WriteBehindQueue.Lane.allCases)
    }

    /// Waits until the changes of `task` that views reflect (membership, task record) are committed; its data
    /// ledgers' and checkpoints' writes may still be pending. On return (with no suspension after it) the task's
    /// in-memory membership is exactly what is on disk.
    func settleView(_ task: TaskID) async throws {
        try await settle(task, lanes: [.membership])
    }

    private func settle(_ task: TaskID, lanes: [WriteBehindQueue.Lane]) async throws {
        while let ticket = unsettled(task, lanes: lanes) {
            try await queue.waitUntilDurable(ticket)
        }
    }

    /// Whether the task's latest changes on `lanes` are durable (``settle(_:lanes:)`` would not wait).
    private func isSettled(_ task: TaskID, lanes: [WriteBehindQueue.Lane]) -> Bool {
        unsettled(task, lanes: lanes) == nil
    }

    private func unsettled(_ task: TaskID, lanes: [WriteBehindQueue.Lane]) -> WriteBehindQueue.Ticket? {
        lanes.lazy.compactMap { self.latestChange[task]?[$0] }.first { !self.queue.isDurable($0) }
    }

    // MARK: Pushes

    /// Pushes the task's views to its members once what they reflect is durable. Pushes asked for while one waits
    /// are folded into it (its reason lists theirs): the one way views are pushed, for membership changes and stops.
    func schedulePush(_ task: TaskID, reason: String) {
        if pendingPushes[task] == nil {
            pendingPushes[task] = []
            effects.submit { await self.push(task) }
        }
        pendingPushes[task, default: []].append(reason)
    }

    /// The least time between two pushes to a task's members: proportional to their number (100 µs a member, at
    /// most 1 s), so that a task whose membership changes continuously (thousands of workers registering at once)
    /// pushes at most 10,000 views a second (fewer past 10,000 members, where the cap holds): 0.3–0.5 of a core, a
    /// pushed view costing the coordinator about what a no-op stream message does (32–47 µs of CPU, `dtr bench swarm
    /// heartbeat`), and the worker as much again to read it. At 20 µs a member that was 50,000 views a second at any
    /// size up to 12,500 members, and the pushes of a 10,000-worker registration took more than the coordinator had:
    /// heartbeats waited behind them, live workers were suspected by the thousand and in one run 1,334 were declared
    /// dead (bench/RESULTS.md). Without spacing, pushing every member a view per committed batch of joins made a
    /// rendezvous quadratic (10,000 registrations took 72 s). A task of 100 members waits 10 ms at most; each push
    /// carries the newest view and the changes folded into it, and members also get the current view in every
    /// heartbeat's acknowledgement.
    static func pushSpacing(members: Int) -> Duration {
        min(.microseconds(100) * members, .milliseconds(1000))
    }

    private func push(_ task: TaskID) async {
        if let last = lastPush[task] {
            let next = last + Self.pushSpacing(members: membership.members(of: task).count)
            let wait = next - now().monotonic
            if wait > .zero { try? await Task.sleep(for: wait) }
        }
        do {
            try await settleView(task)
        } catch {
            // Not durable: nobody may see it. Workers learn the state from their next acknowledged heartbeat.
            pendingPushes[task] = nil
            logger.warning("membership change not pushed: \(error)", metadata: ["task_id": "\(task)"])
            return
        }
        let reasons = pendingPushes.removeValue(forKey: task) ?? []
        let reason =
            reasons.count <= 4
            ? reasons.joined(separator: "; ")
            : reasons.suffix(3).joined(separator: "; ") + " (and \(reasons.count - 3) earlier changes)"
        let members = membership.members(of: task)
        lastPush[task] = members.isEmpty ? nil : now().monotonic
        for id in members {
            if let channel = sessions.channel(of: id), let view = membership.view(of: id, reason: reason) {
                channel.send(SessionUpdate(kind: .push, view: outgoing(view)))
            }
        }
    }

    private func log(_ event: MembershipEvent) {
        switch event {
        case .joined(let id, let task, let rank, let epoch):
            logger.info(
                "worker joined",
                metadata: [
                    "worker_id": "\(id)", "task_id": "\(task)", "rank": "\(rank)", "membership_epoch": "\(epoch)",
                ])
        case .left(let id, let task, let epoch, let failed):
            logger.log(
                level: failed ? .warning : .info, failed ? "worker left after failing" : "worker left",
                metadata: ["worker_id": "\(id)", "task_id": "\(task)", "membership_epoch": "\(epoch)"])
        case .restarted(let id, let task, let epoch):
            logger.info(
                "worker restarted: its previous process left the task",
                metadata: ["worker_id": "\(id)", "task_id": "\(task)", "membership_epoch": "\(epoch)"])
        case .suspected(let id, let task, let silence):
            logger.warning(
                "worker suspected: no heartbeat",
                metadata: ["worker_id": "\(id)", "task_id": "\(task)", "silent_for": "\(silence)"])
        case .recovered(let id, let task):
            logger.info("suspect worker is heartbeating again", metadata: ["worker_id": "\(id)", "task_id": "\(task)"])
        case .declaredDead(let id, let task, let silence, let epoch):
            logger.warning(
                "worker declared dead",
                metadata: [
                    "worker_id": "\(id)", "task_id": "\(task)", "silent_for": "\(silence)",
                    "membership_epoch": "\(epoch)",
                ])
        case .forgotten(let id):
            logger.debug("departed worker forgotten after the retention", metadata: ["worker_id": "\(id)"])
        case .coordinatorStalled(let gap):
            logger.warning(
                "coordinator stalled: every member gets a fresh heartbeat timeout", metadata: ["gap": "\(gap)"])
        }
    }
}

/// A summary of the engine for `/api/status`.
public struct EngineStatus: Sendable {
    /// Time since the engine started.
    public var uptime: Duration
    /// Each task's epoch and world size.
    public var tasks: [TaskSummary]
    /// Known workers by health.
    public var health: [WorkerHealth: Int]
    /// Open session streams.
    public var sessions: Int
}

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
    /// The write-behind queue durable changes go through.
    public nonisolated let queue: WriteBehindQueue
    /// When the engine started.
    public nonisolated let startedAt: Moment

    private var membership: Membership
    private let now: @Sendable () -> Moment
    private let logger: Logger

    /// Creates an engine from the durable state read at start-up. Restored members get one full dead timeout of grace.
    public init(
        membershipConfig: MembershipConfig, restoring persisted: PersistedMembership, queue: WriteBehindQueue,
        sessions: SessionRegistry = SessionRegistry(), now: @escaping @Sendable () -> Moment, logger: Logger
    ) {
        let start = now()
        self.membershipConfig = membershipConfig
        self.membership = Membership(
            config: membershipConfig, restoring: persisted.records, epochs: persisted.epochs, now: start)
        self.queue = queue
        self.sessions = sessions
        self.now = now
        self.startedAt = start
        self.logger = logger
        let members = persisted.records.filter { $0.standing == .member }.count
        if !persisted.records.isEmpty {
            logger.info(
                "restored membership: every member gets \(membershipConfig.deadAfter) of grace to heartbeat",
                metadata: ["workers": "\(persisted.records.count)", "members": "\(members)"])
        }
    }

    // MARK: Membership

    /// Registers a worker; returns once its membership is durable.
    public func register(_ spec: WorkerSpec) async throws -> MembershipView {
        let (view, directives) = try membership.onRegister(spec, now: now())
        // A repeated registration changes nothing, but must not be acknowledged before the first one is durable.
        try await queue.waitUntilDurable(carryOut(directives) ?? queue.lastTicket)
        return view
    }

    /// Records a heartbeat (memory only) and returns the worker's current view.
    public func heartbeat(_ id: WorkerID, step: Int64, metrics: [String: Double]) throws(CoreError) -> MembershipView {
        let (view, directives) = try membership.onHeartbeat(id, step: step, metrics: metrics, now: now())
        if !directives.isEmpty { carryOut(directives) }
        return view
    }

    /// Deregisters a worker; returns the task's epoch once the leave is durable.
    public func deregister(_ id: WorkerID, reason: String) async throws -> UInt64 {
        let (epoch, directives) = try membership.onDeregister(id, now: now())
        if !directives.isEmpty {
            logger.info("worker deregistered", metadata: ["worker_id": "\(id)", "reason": "\(reason)"])
        }
        try await queue.waitUntilDurable(carryOut(directives) ?? queue.lastTicket)
        return epoch
    }

    /// Runs the failure detector once (the engine service calls this every tick).
    public func tick() {
        carryOut(membership.onTick(now: now()))
    }

    // MARK: Queries

    /// The current view of a worker, or nil when unknown.
    public func view(of id: WorkerID) -> MembershipView? { membership.view(of: id) }

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

    /// Carries out directives; returns the ticket of the last durable change enqueued, if any.
    @discardableResult
    private func carryOut(_ directives: [Membership.Directive]) -> WriteBehindQueue.Ticket? {
        var ticket: WriteBehindQueue.Ticket?
        for directive in directives {
            switch directive {
            case .persist(let change):
                ticket = queue.enqueue(.membership(change))
            case .membershipChanged(let task, let reason, let except):
                for id in membership.members(of: task) where id != except && sessions.hasSession(id) {
                    if let view = membership.view(of: id, reason: reason) {
                        sessions.send(SessionUpdate(kind: .push, view: view), to: id)
                    }
                }
            case .log(let event):
                log(event)
            }
        }
        return ticket
    }

    private func log(_ event: MembershipEvent) {
        switch event {
        case .joined(let id, let task, let rank, let epoch):
            logger.info(
                "worker joined",
                metadata: [
                    "worker_id": "\(id)", "task_id": "\(task)", "rank": "\(rank)", "membership_epoch": "\(epoch)",
                ])
        case .left(let id, let task, let epoch):
            logger.info(
                "worker left", metadata: ["worker_id": "\(id)", "task_id": "\(task)", "membership_epoch": "\(epoch)"])
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

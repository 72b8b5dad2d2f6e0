import Checkpoint
import DataShard
public import RuntimeCore

/// A worker as the HTTP API and the live events show it: the membership's snapshot, with its step rate and whether
/// it is a straggler in its task.
public struct WorkerStatus: Sendable {
    /// What the membership knows.
    public var snapshot: WorkerSnapshot
    /// Steps per second over its last ~30 s of heartbeats; nil when it is not a member or reports no steps.
    public var stepsPerSecond: Double?
    /// Whether its step rate is below 2/3 of the median of its task's members that report steps.
    public var straggler: Bool
}

/// What the dashboard's live view needs besides the state machines: step rates, the training and activity
/// histories, the coalescing of `metrics` and `dataset_progress` events, and barrier arrival times. Memory only.
struct LiveState: Sendable {
    /// When each open barrier generation's first and last participant arrived, and who arrived.
    struct Arrivals: Sendable {
        var first: Duration
        var last: Duration
        var workers: Set<WorkerID>
    }

    /// Least time between two `metrics` events of a worker, or `dataset_progress` events of a dataset epoch.
    static let coalescing: Duration = .milliseconds(500)

    /// Most `metrics` events a second, all workers together: past 500 workers each worker's events are spaced further
    /// apart (10 s at 10,000 workers), so that an event client keeps up and membership events stay in the replay
    /// buffer for seconds, where 2 a second per worker would be 20,000 events a second at 10,000 workers.
    static let metricsEventsPerSecond = 1000

    /// The least time between two `metrics` events of one worker when `workers` workers are known.
    static func metricsInterval(workers: Int) -> Duration {
        max(coalescing, .seconds(Double(workers) / Double(metricsEventsPerSecond)))
    }

    var stepRates: [WorkerID: StepRate] = [:]
    var training = TrainingHistory()
    var activity = ActivityHistory()
    var workerMetrics = Coalescer<WorkerID>(interval: coalescing)
    var datasetProgress = Coalescer<LedgerKey>(interval: coalescing)
    var barrierArrivals: [BarrierID: Arrivals] = [:]
    /// Per task, its straggler threshold and when it was computed: worker events reuse it for `coalescing` (it looks
    /// at every member's step rate, and a rendezvous publishes an event per join).
    var stragglerThresholds: [TaskID: (at: Duration, threshold: Double?)] = [:]
}

/// The dashboard's live view: hooks the engine calls where things happen, and the queries of `/api/workers`,
/// `/api/metrics` and `/api/tasks/:id/metrics` that use what they record.
///
/// Events are published as values (``EventBus/publish(_:_:)`` encodes them later, off the engine). The heartbeat hook
/// is the hot path: a step-rate update, the training history's append, and, only while a client listens, a set
/// insertion marking the worker's `metrics` event as due; the event itself is built at the next tick, at most twice
/// a second per worker and ``LiveState/metricsEventsPerSecond`` in all.
extension CoordinatorEngine {
    // MARK: Hooks

    /// A member's heartbeat (hot path).
    func observeHeartbeat(_ id: WorkerID, view: MembershipView, step: Int64, metrics: [String: Double], at: Moment) {
        guard view.rank != nil else { return }
        live.stepRates[id, default: StepRate()].record(step: step, at: at.monotonic)
        live.training.record(task: view.taskID, worker: id, step: step, metrics: metrics)
        if events.hasClients { live.workerMetrics.mark(id) }
    }

    /// Every tick: an activity point when one is due, and the coalesced events that are due.
    func observeTick(_ moment: Moment) {
        if live.activity.isDue(at: moment.monotonic) {
            var members = 0
            var steps = 0.0
            for task in membership.tasks() {
                for id in membership.members(of: task.taskID) {
                    members += 1
                    steps += live.stepRates[id]?.perSecond ?? 0
                }
            }
            live.activity.sample(
                at: moment, heartbeatsTotal: metrics.heartbeatsTotal, stepsPerSecond: steps, workers: members)
        }
        publishDueEvents(now: moment)
    }

    /// Publishes the `metrics` and `dataset_progress` events that are due.
    func publishDueEvents(now moment: Moment) {
        live.workerMetrics.interval = LiveState.metricsInterval(workers: membership.workerCount)
        // A tick's share of the budget, so that workers marked together (a client connecting) go out over the
        // interval instead of in one burst that would overflow the clients' queues.
        let share = Double(LiveState.metricsEventsPerSecond) * membershipConfig.tickInterval.seconds
        let workers = live.workerMetrics.due(now: moment.monotonic, limit: max(1, Int(share.rounded(.up))))
        if !workers.isEmpty {
            var thresholds: [TaskID: Double] = [:]
            var measured: Set<TaskID> = []
            for id in workers {
                guard let snapshot = membership.worker(id, now: moment) else { continue }
                let task = snapshot.record.spec.taskID
                if measured.insert(task).inserted { thresholds[task] = stragglerThreshold(of: task) }
                let status = workerStatus(snapshot, threshold: thresholds[task])
                events.publish(.worker) { WorkerEventBody(change: "metrics", worker: WorkerBody(status)) }
            }
        }
        for key in live.datasetProgress.due(now: moment.monotonic) {
            guard let counts = catalog.counts(of: key) else { continue }
            events.publish(.datasetProgress) {
                DatasetProgressEventBody(
                    dataset: key.dataset, taskID: key.task.rawValue, epoch: key.epoch, doneShards: counts.done,
                    inProgressShards: counts.inProgress, totalShards: counts.total,
                    committedSamples: counts.committedSamples, totalSamples: counts.totalSamples)
            }
        }
    }

    /// A membership event: a `worker` event (joined, left, died, suspected, recovered), or forgetting a worker.
    func publishWorkerEvent(_ event: MembershipEvent) {
        let id: WorkerID
        let change: String
        switch event {
        case .joined(let worker, _, _, _):
            live.stepRates[worker] = StepRate()
            (id, change) = (worker, "joined")
        case .left(let worker, _, _, let failed):
            (id, change) = (worker, failed ? "failed" : "left")
        case .restarted(let worker, _, _):
            // A new process: its step rate starts over.
            live.stepRates[worker] = StepRate()
            (id, change) = (worker, "restarted")
        case .declaredDead(let worker, _, _, _):
            (id, change) = (worker, "died")
        case .suspected(let worker, _, _):
            (id, change) = (worker, "suspected")
        case .recovered(let worker, _):
            (id, change) = (worker, "recovered")
        case .forgotten(let worker):
            live.stepRates[worker] = nil
            live.training.forget(worker)
            live.workerMetrics.forget(worker)
            return
        case .coordinatorStalled:
            return
        }
        guard let snapshot = membership.worker(id, now: now()) else { return }
        let threshold = snapshot.rank == nil ? nil : recentStragglerThreshold(of: snapshot.record.spec.taskID)
        let status = workerStatus(snapshot, threshold: threshold)
        events.publish(.worker) { WorkerEventBody(change: change, worker: WorkerBody(status)) }
    }

    /// A task's record or membership changed: a `task` event.
    func publishTaskEvent(_ id: TaskID) {
        guard let record = tasks.record(id) else { return }
        let task = (
            record: record, members: membership.members(of: id).count, membershipEpoch: membership.epoch(of: id)
        )
        events.publish(.task) { TaskBody(task) }
    }

    /// A dataset epoch's progress changed: a `dataset_progress` event is due (coalesced).
    func noteDatasetProgress(_ key: LedgerKey) {
        live.datasetProgress.mark(key)
    }

    /// A participant arrived at a barrier generation (for the `barrier` event's wait and participants).
    func noteBarrierArrival(_ id: BarrierID, worker: WorkerID, at: Duration) {
        if var arrivals = live.barrierArrivals[id] {
            arrivals.workers.insert(worker)
            arrivals.last = max(arrivals.last, at)
            live.barrierArrivals[id] = arrivals
        } else {
            live.barrierArrivals[id] = LiveState.Arrivals(first: at, last: at, workers: [worker])
        }
    }

    /// A barrier generation ended: a `barrier` event.
    func publishBarrierEvent(_ directive: BarrierTable.Directive) {
        let body: BarrierEventBody
        switch directive {
        case .release(let id, _, let arrivals):
            live.barrierArrivals[id] = nil
            let times = arrivals.values
            body = BarrierEventBody(
                change: "released", taskID: id.key.task.rawValue, name: id.key.name, generation: id.generation,
                participants: arrivals.count, missingRanks: [], missingWorkers: [],
                waitSeconds: ((times.max() ?? .zero) - (times.min() ?? .zero)).seconds)
        case .fail(let id, let failure):
            let arrivals = live.barrierArrivals.removeValue(forKey: id)
            body = BarrierEventBody(
                change: failure.code == .deadlineExceeded ? "timed_out" : "aborted", taskID: id.key.task.rawValue,
                name: id.key.name, generation: id.generation, participants: arrivals?.workers.count ?? 0,
                missingRanks: failure.missing.map(\.rank), missingWorkers: failure.missing.map(\.worker.rawValue),
                waitSeconds: arrivals.map { ($0.last - $0.first).seconds } ?? 0)
        }
        events.publish(.barrier) { body }
    }

    /// A checkpoint was committed or aborted (and that is durable): a `checkpoint` event.
    func publishCheckpointEvent(_ record: CheckpointRecord) {
        guard record.status == .committed || record.status == .aborted else { return }
        events.publish(.checkpoint) {
            CheckpointEventBody(change: record.status.rawValue, checkpoint: CheckpointsBody.Checkpoint(record))
        }
    }

    // MARK: Queries

    /// Every known worker (as ``workers()`` lists them) with its step rate and straggler flag, for `/api/workers`.
    public func workerStatuses() -> [WorkerStatus] {
        var thresholds: [TaskID: Double] = [:]
        var measured: Set<TaskID> = []
        return membership.workers(now: now()).map { snapshot in
            let task = snapshot.record.spec.taskID
            if measured.insert(task).inserted { thresholds[task] = stragglerThreshold(of: task) }
            return workerStatus(snapshot, threshold: thresholds[task])
        }
    }

    /// The last 10 minutes of activity, one point per 5 s, oldest first.
    public func activity() -> [ActivityHistory.Point] { live.activity.points }

    /// A task's training charts, for `/api/tasks/:id/metrics`.
    ///
    /// - Throws: `notFound` for an unknown task.
    public func trainingCharts(of task: TaskID) throws(CoreError) -> TrainingCharts {
        guard tasks.record(task) != nil else {
            throw CoreError(.notFound, "no task \(task): GET /api/tasks lists them")
        }
        return live.training.charts(of: task)
    }

    // MARK: Internals

    private func workerStatus(_ snapshot: WorkerSnapshot, threshold: Double?) -> WorkerStatus {
        let rate = snapshot.rank == nil ? nil : live.stepRates[snapshot.record.spec.id]?.perSecond
        return WorkerStatus(
            snapshot: snapshot, stepsPerSecond: rate,
            straggler: StragglerRule.isStraggler(rate: rate, threshold: threshold))
    }

    /// The straggler threshold of a task's members as of at most `LiveState.coalescing` ago.
    private func recentStragglerThreshold(of task: TaskID) -> Double? {
        let moment = now().monotonic
        if let cached = live.stragglerThresholds[task], moment - cached.at < LiveState.coalescing {
            return cached.threshold
        }
        let threshold = stragglerThreshold(of: task)
        live.stragglerThresholds[task] = membership.members(of: task).isEmpty ? nil : (moment, threshold)
        return threshold
    }

    /// The straggler threshold of a task's current members.
    private func stragglerThreshold(of task: TaskID) -> Double? {
        StragglerRule.threshold(membership.members(of: task).lazy.map { self.live.stepRates[$0]?.perSecond })
    }
}

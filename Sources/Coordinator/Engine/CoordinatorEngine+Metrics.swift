public import RuntimeCore

/// State figures for `/api/metrics` and the gauges of `/metrics`.
public struct MetricsSnapshot: Sendable {
    /// Time since start-up.
    public var uptime: Duration
    /// Heartbeats per second, averaged over the last 10 s.
    public var heartbeatsPerSecond: Double
    /// Heartbeats since start-up.
    public var heartbeatsTotal: Int
    /// Known workers by health.
    public var workers: [WorkerHealth: Int]
    /// Tasks by status.
    public var tasks: [TaskRecord.Status: Int]
    /// Open session streams.
    public var sessions: Int
    /// Barrier figures.
    public var barriers: BarrierStatus
    /// Checkpoints by status.
    public var checkpoints: [String: Int]
    /// Commit latencies of checkpoints.
    public var checkpointLatency: LatencyHistogram
    /// The last 10 minutes of activity, oldest first.
    public var activity: [ActivityHistory.Point]
}

extension CoordinatorEngine {
    /// The current figures; also sets the gauges `/metrics` exports, so call it right before rendering them.
    public func metricsSnapshot() -> MetricsSnapshot {
        let status = status()
        var taskCounts: [TaskRecord.Status: Int] = [:]
        for task in tasks.all { taskCounts[task.status, default: 0] += 1 }
        var checkpointCounts: [String: Int] = [:]
        for record in checkpoints.all { checkpointCounts[record.status.rawValue, default: 0] += 1 }
        let barriers = barrierStatus()
        for health in WorkerHealth.allCases {
            metrics.setGauge("workers", [("status", health.rawValue)], to: Double(status.health[health] ?? 0))
        }
        for taskStatus in TaskRecord.Status.allCases {
            metrics.setGauge("tasks", [("status", taskStatus.rawValue)], to: Double(taskCounts[taskStatus] ?? 0))
        }
        for task in status.tasks {
            metrics.setGauge("task_world_size", [("task", task.taskID.rawValue)], to: Double(task.worldSize))
            metrics.setGauge("membership_epoch", [("task", task.taskID.rawValue)], to: Double(task.epoch))
        }
        metrics.setGauge("sessions", [], to: Double(status.sessions))
        metrics.setGauge("barriers_open", [], to: Double(barriers.open.count))
        metrics.setGauge("checkpoints_pending", [], to: Double(checkpointCounts["pending"] ?? 0))
        metrics.setGauge("uptime", [], to: status.uptime.seconds)
        metrics.setGauge("scheduling_lag", [], to: lastLag.seconds)
        metrics.setGauge("event_clients", [], to: Double(events.clients))
        return MetricsSnapshot(
            uptime: status.uptime, heartbeatsPerSecond: metrics.heartbeatRate(at: now().monotonic),
            heartbeatsTotal: metrics.heartbeatsTotal, workers: status.health, tasks: taskCounts,
            sessions: status.sessions, barriers: barriers, checkpoints: checkpointCounts,
            checkpointLatency: metrics.checkpointLatency, activity: live.activity.points)
    }
}

/// What the workers of each task reported in their heartbeats, per metric against step, for the dashboard's training
/// charts (`GET /api/tasks/:id/metrics`). Memory only, and bounded: at most ``maxMetrics`` metric names per task
/// (later names are not kept); each worker's series of a metric holds at most ``pointsPerSeries`` points, fewer when
/// there are so many series that they would hold more than the point budget in all (``defaultPointBudget``: 61 MiB)
/// but never fewer than ``minPointsPerSeries`` (so beyond 250,000 series the budget is exceeded: at the limits,
/// 100,000 workers × 64 metrics, 102 million points, 1.5 GiB; downsampled, see ``MetricSeries``); and a worker's
/// series go when the membership forgets the worker (10 minutes after it departed, by default).
public struct TrainingHistory: Sendable {
    /// Metric names kept per task.
    public static let maxMetrics = 64
    /// Points kept per (worker, metric) while the budget allows.
    public static let pointsPerSeries = 500
    /// Points kept at least per series, whatever the budget: a chart needs a shape.
    public static let minPointsPerSeries = 16
    /// Points (16 bytes each) all series may hold together: 500 per series up to 8,000 series (e.g. 2,666 workers
    /// reporting 3 metrics); at 100,000 workers reporting 3 metrics, 16 each (the floor: 4.8 million points, 73 MiB).
    public static let defaultPointBudget = 4_000_000

    /// All series together hold at most about this many points.
    public let pointBudget: Int
    /// Series holding at least one point.
    private var seriesCount = 0

    /// The most points a series keeps now: the budget shared by every series, within
    /// ``minPointsPerSeries``...``pointsPerSeries``. A series is trimmed to it when it records next.
    public var pointsPerSeriesNow: Int {
        max(Self.minPointsPerSeries, min(Self.pointsPerSeries, pointBudget / max(1, seriesCount)))
    }

    /// One task's series. A worker's series are an array indexed like `names` (one allocation per worker rather than
    /// a dictionary of names: at 100,000 workers that is about 200 bytes each); a metric the worker never reported is
    /// an empty series, which allocates nothing.
    private struct TaskHistory: Sendable {
        /// Metric names in the order first reported.
        var names: [String] = []
        /// Each name's position in `names` (and in every worker's array of series).
        var index: [String: Int] = [:]
        /// Each worker's series, indexed like `names` (shorter when it never reported the later names).
        var series: [WorkerID: [MetricSeries]] = [:]

        /// Records the report; returns how many of the worker's series got their first point.
        mutating func record(worker: WorkerID, step: Int64, metrics: [String: Double], limit: Int) -> Int {
            // The worker's series are looked up once for all its metrics, and changed in place (the subscript's modify
            // accessor).
            let (started, none) = Self.record(
                metrics, step: step, limit: limit, into: &series[worker, default: []], names: &names, index: &index)
            // The lookup added the worker: not to be kept when every name it reported is past the limit.
            if none { series[worker] = nil }
            return started
        }

        /// Records the report into a worker's series; returns how many got their first point, and whether the
        /// worker has none.
        private static func record(
            _ metrics: [String: Double], step: Int64, limit: Int, into series: inout [MetricSeries],
            names: inout [String], index: inout [String: Int]
        ) -> (started: Int, none: Bool) {
            var started = 0
            for (name, value) in metrics {
                let position: Int
                if let known = index[name] {
                    position = known
                } else {
                    guard names.count < TrainingHistory.maxMetrics else { continue }
                    position = names.count
                    names.append(name)
                    index[name] = position
                }
                if series.record(at: position, step: step, value: value, limit: limit) { started += 1 }
            }
            return (started, series.isEmpty)
        }
    }

    private var tasks: [TaskID: TaskHistory] = [:]
    /// The task each worker's series are kept under.
    private var taskOf: [WorkerID: TaskID] = [:]

    /// No history; all series together keep at most about `pointBudget` points.
    public init(pointBudget: Int = defaultPointBudget) {
        self.pointBudget = pointBudget
    }

    /// A member of `task` reported `metrics` at `step`. An empty report (the SDK's "nothing new") records nothing.
    public mutating func record(task: TaskID, worker: WorkerID, step: Int64, metrics: [String: Double]) {
        guard !metrics.isEmpty else { return }
        if let previous = taskOf.updateValue(task, forKey: worker), previous != task { drop(worker, from: previous) }
        // In place (the subscript's modify accessor): a heartbeat copies no series.
        seriesCount += tasks[task, default: TaskHistory()].record(
            worker: worker, step: step, metrics: metrics, limit: pointsPerSeriesNow)
    }

    /// Drops a worker's series (the membership forgot it).
    public mutating func forget(_ worker: WorkerID) {
        guard let task = taskOf.removeValue(forKey: worker) else { return }
        drop(worker, from: task)
    }

    /// Drops a worker's series kept under `task`.
    private mutating func drop(_ worker: WorkerID, from task: TaskID) {
        guard var history = tasks.removeValue(forKey: task) else { return }
        let dropped = history.series.removeValue(forKey: worker) ?? []
        seriesCount -= dropped.count { !$0.points.isEmpty }
        if history.series.isEmpty { return }
        tasks[task] = history
    }

    /// A task's charts: every metric name kept, each worker's series, and the per-step mean.
    public func charts(of task: TaskID) -> TrainingCharts {
        guard let history = tasks[task] else { return TrainingCharts(metrics: [], series: [], mean: []) }
        let names = history.names.sorted()
        let workers = history.series.keys.sorted()
        var series: [TrainingCharts.Series] = []
        var mean: [TrainingCharts.Mean] = []
        for name in names {
            guard let position = history.index[name] else { continue }
            let perWorker = workers.compactMap { worker -> TrainingCharts.Series? in
                guard let all = history.series[worker], position < all.count, !all[position].points.isEmpty else {
                    return nil
                }
                return TrainingCharts.Series(metric: name, worker: worker, points: all[position].points)
            }
            series += perWorker
            mean.append(TrainingCharts.Mean(metric: name, points: Self.mean(of: perWorker.map(\.points))))
        }
        return TrainingCharts(metrics: names, series: series, mean: mean)
    }

    /// The mean value at each step that at least two of the series (one, when there is only one) have a point at;
    /// steps in ascending order. A non-finite value makes its step's mean non-finite.
    static func mean(of series: [[MetricSeries.Point]]) -> [MetricSeries.Point] {
        var sums: [Int64: (sum: Double, count: Int)] = [:]
        for points in series {
            for point in points {
                sums[point.step, default: (0, 0)].sum += point.value
                sums[point.step, default: (0, 0)].count += 1
            }
        }
        let needed = min(2, series.count)
        return sums.keys.sorted().compactMap { step in
            guard let entry = sums[step], entry.count >= needed else { return nil }
            return MetricSeries.Point(step: step, value: entry.sum / Double(entry.count))
        }
    }
}

extension [MetricSeries] {
    /// Records into the series at `position` (at most `limit` points), adding empty series (no allocation each) up
    /// to it; whether that series got its first point.
    fileprivate mutating func record(at position: Int, step: Int64, value: Double, limit: Int) -> Bool {
        while count <= position { append(MetricSeries(capacity: TrainingHistory.pointsPerSeries)) }
        let wasEmpty = self[position].points.isEmpty
        self[position].record(step: step, value: value, limit: limit)
        return wasEmpty
    }
}

/// A task's training charts, as `GET /api/tasks/:id/metrics` serves them.
public struct TrainingCharts: Sendable, Hashable {
    /// One worker's values of one metric.
    public struct Series: Sendable, Hashable {
        /// The metric.
        public var metric: String
        /// The worker.
        public var worker: WorkerID
        /// Its points, oldest first.
        public var points: [MetricSeries.Point]
    }

    /// The mean over the workers of one metric.
    public struct Mean: Sendable, Hashable {
        /// The metric.
        public var metric: String
        /// Per step, ascending.
        public var points: [MetricSeries.Point]
    }

    /// Every metric name kept, sorted.
    public var metrics: [String]
    /// Sorted by metric, then worker.
    public var series: [Series]
    /// One per metric, in the order of ``metrics``.
    public var mean: [Mean]
}

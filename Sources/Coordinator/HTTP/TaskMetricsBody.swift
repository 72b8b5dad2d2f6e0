import Hummingbird
import RuntimeCore

/// `GET /api/tasks/:id/metrics`: what the task's workers reported, per metric against step (a line per worker, and
/// the mean), for the dashboard's training charts.
struct TaskMetricsBody: ResponseEncodable {
    /// `[step, value]`, the value `null` when not finite.
    struct Point: Encodable {
        var point: MetricSeries.Point

        func encode(to encoder: any Encoder) throws {
            var container = encoder.unkeyedContainer()
            try container.encode(point.step)
            if point.value.isFinite {
                try container.encode(point.value)
            } else {
                try container.encodeNil()
            }
        }
    }

    struct Series: Encodable {
        var metric: String
        var workerID: String
        var points: [Point]

        enum CodingKeys: String, CodingKey {
            case metric, points
            case workerID = "worker_id"
        }
    }

    struct Mean: Encodable {
        var metric: String
        var points: [Point]
    }

    var taskID: String
    var metrics: [String]
    var series: [Series]
    var mean: [Mean]

    enum CodingKeys: String, CodingKey {
        case metrics, series, mean
        case taskID = "task_id"
    }

    init(task: TaskID, charts: TrainingCharts) {
        taskID = task.rawValue
        metrics = charts.metrics
        series = charts.series.map {
            Series(metric: $0.metric, workerID: $0.worker.rawValue, points: $0.points.map(Point.init))
        }
        mean = charts.mean.map { Mean(metric: $0.metric, points: $0.points.map(Point.init)) }
    }
}

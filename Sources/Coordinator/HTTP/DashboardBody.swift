import Hummingbird

/// `GET /api/dashboard`: everything the dashboard shows, in one response.
struct DashboardBody: ResponseEncodable {
    var status: StatusBody
    var workers: WorkersBody
    var tasks: TasksBody
    var datasets: DatasetsBody
    var barriers: BarriersBody
    var checkpoints: CheckpointsBody
    var metrics: MetricsBody
    var logs: LogsBody
}

import Hummingbird

/// `GET /api/dashboard`: everything the dashboard shows, in one response.
struct DashboardBody: ResponseEncodable {
    /// The newest event id when the snapshot was taken: connect to `/api/events?since=<event_id>`.
    var eventID: UInt64
    var status: StatusBody
    var workers: WorkersBody
    var tasks: TasksBody
    var datasets: DatasetsBody
    var barriers: BarriersBody
    var checkpoints: CheckpointsBody
    var metrics: MetricsBody
    var logs: LogsBody

    enum CodingKeys: String, CodingKey {
        case status, workers, tasks, datasets, barriers, checkpoints, metrics, logs
        case eventID = "event_id"
    }
}

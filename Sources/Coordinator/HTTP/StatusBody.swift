import Hummingbird
import RuntimeCore

/// `GET /api/status`.
struct StatusBody: ResponseEncodable {
    struct Heartbeat: Encodable {
        var intervalMs: Int64
        var suspectAfterMs: Int64
        var deadAfterMs: Int64

        enum CodingKeys: String, CodingKey {
            case intervalMs = "interval_ms"
            case suspectAfterMs = "suspect_after_ms"
            case deadAfterMs = "dead_after_ms"
        }
    }

    struct Workers: Encodable {
        var total: Int
        var healthy: Int
        var suspect: Int
        var dead: Int
        var left: Int
    }

    /// One task's membership: its epoch and world size.
    struct TaskMembership: Encodable {
        var taskID: String
        var membershipEpoch: UInt64
        var worldSize: Int

        enum CodingKeys: String, CodingKey {
            case taskID = "task_id"
            case membershipEpoch = "membership_epoch"
            case worldSize = "world_size"
        }
    }

    var version = DTRuntimeVersion.current
    var host: String
    @ExplicitNull var grpcPort: Int?
    @ExplicitNull var httpPort: Int?
    var uptimeSeconds: Double
    var heartbeat: Heartbeat
    var workers: Workers
    var sessions: Int
    var tasks: [TaskMembership]

    enum CodingKeys: String, CodingKey {
        case version, host, heartbeat, workers, sessions, tasks
        case grpcPort = "grpc_port"
        case httpPort = "http_port"
        case uptimeSeconds = "uptime_seconds"
    }
}

import Hummingbird
import RuntimeCore

/// `GET /api/health`.
struct HealthBody: ResponseEncodable {
    var status = "ok"
    var version = DTRuntimeVersion.current
    var uptimeSeconds: Double

    enum CodingKeys: String, CodingKey {
        case status, version
        case uptimeSeconds = "uptime_seconds"
    }
}

import Foundation
import Hummingbird
import RuntimeCore

/// `GET /api/workers`.
struct WorkersBody: ResponseEncodable {
    var workers: [WorkerBody]
}

/// One worker in `GET /api/workers`. Absent values are explicit `null`s, so every key is always present.
struct WorkerBody: Encodable {
    var status: WorkerStatus

    /// The label the swarm of `dtr serve --demo` gives its workers (`dtr/demo: true`): shown as `demo`.
    static let demoLabel = "dtr/demo"

    init(_ status: WorkerStatus) {
        self.status = status
    }

    enum CodingKeys: String, CodingKey {
        case workerID = "worker_id"
        case taskID = "task_id"
        case rank, host, port, labels, status, step, metrics, straggler, demo
        case gpuCount = "gpu_count"
        case lastHeartbeatAgeSeconds = "last_heartbeat_age_seconds"
        case registeredAt = "registered_at"
        case departedAt = "departed_at"
        case stepsPerSecond = "steps_per_second"
    }

    func encode(to encoder: any Encoder) throws {
        let snapshot = status.snapshot
        let record = snapshot.record
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(record.spec.id.rawValue, forKey: .workerID)
        try container.encode(record.spec.taskID.rawValue, forKey: .taskID)
        try container.encode(snapshot.rank, forKey: .rank)
        try container.encode(record.spec.host, forKey: .host)
        try container.encode(record.spec.port, forKey: .port)
        try container.encode(record.spec.gpuCount, forKey: .gpuCount)
        try container.encode(record.spec.labels, forKey: .labels)
        try container.encode(snapshot.health.rawValue, forKey: .status)
        try container.encode(snapshot.lastHeartbeatAge.seconds, forKey: .lastHeartbeatAgeSeconds)
        try container.encode(snapshot.step, forKey: .step)
        // JSON has no NaN or infinities: a diverged metric is reported as null.
        try container.encode(snapshot.metrics.mapValues { $0.isFinite ? $0 : nil }, forKey: .metrics)
        try container.encode(Self.date(record.registeredAtMillis), forKey: .registeredAt)
        try container.encode(record.departedAtMillis.map(Self.date), forKey: .departedAt)
        try container.encode(status.stepsPerSecond, forKey: .stepsPerSecond)
        try container.encode(status.straggler, forKey: .straggler)
        try container.encode(record.spec.labels[Self.demoLabel] == "true", forKey: .demo)
    }

    private static func date(_ millis: Int64) -> Date {
        Date(timeIntervalSince1970: Double(millis) / 1000)
    }
}

import DataShard
import Foundation
import Hummingbird
import RuntimeCore

// The JSON bodies of the HTTP API (documented in docs/API.md and docs/openapi.yaml). Keys are snake_case, as in the
// reference.

// swift-format-ignore: UseSynthesizedInitializer
/// An optional body field that is encoded as an explicit `null` when absent (a synthesized `Encodable` leaves the key
/// out), so that every documented key is always present. Its initializer is written out: only a declared
/// `init(wrappedValue:)` lets `@ExplicitNull var x: T?` be initialized with a `T?` (memberwise initializers included).
@propertyWrapper
struct ExplicitNull<Value: Encodable>: Encodable {
    var wrappedValue: Value?

    init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue {
            try container.encode(wrappedValue)
        } else {
            try container.encodeNil()
        }
    }
}

extension ExplicitNull: Sendable where Value: Sendable {}

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

/// `GET /api/datasets`.
struct DatasetsBody: ResponseEncodable {
    var datasets: [DatasetBody]
}

/// One dataset in `GET /api/datasets`: its spec, and per task its current epoch and its retained epochs' progress.
struct DatasetBody: ResponseEncodable {
    struct Epoch: Encodable {
        var epoch: Int64
        var doneShards: Int
        var totalShards: Int
        var shardsPerWorker: [String: Int]
        var unownedShards: Int
        var inProgressShards: Int
        var committedSamples: Int64
        var totalSamples: Int64

        enum CodingKeys: String, CodingKey {
            case epoch
            case doneShards = "done_shards"
            case totalShards = "total_shards"
            case shardsPerWorker = "shards_per_worker"
            case unownedShards = "unowned_shards"
            case inProgressShards = "in_progress_shards"
            case committedSamples = "committed_samples"
            case totalSamples = "total_samples"
        }
    }

    /// One task's progress through the dataset: its current epoch and the retained epochs.
    struct TaskProgress: Encodable {
        var taskID: String
        var currentEpoch: Int64
        var epochs: [Epoch]

        enum CodingKeys: String, CodingKey {
            case epochs
            case taskID = "task_id"
            case currentEpoch = "current_epoch"
        }
    }

    var name: String
    var totalSamples: Int64
    var shardSize: Int64
    var shuffle: Bool
    var seed: UInt64
    var numShards: Int64
    var registeredAt: Date
    var tasks: [TaskProgress]

    enum CodingKeys: String, CodingKey {
        case name, shuffle, seed, tasks
        case totalSamples = "total_samples"
        case shardSize = "shard_size"
        case numShards = "num_shards"
        case registeredAt = "registered_at"
    }

    init(record: DatasetRecord, ledgers: [LedgerSummary]) {
        let spec = record.spec
        name = spec.name
        totalSamples = spec.totalSamples
        shardSize = spec.shardSize
        shuffle = spec.shuffle
        seed = spec.seed
        numShards = spec.shardCount
        registeredAt = Date(timeIntervalSince1970: Double(record.registeredAtMillis) / 1000)
        let byTask = Dictionary(grouping: ledgers, by: \.key.task)
        tasks = byTask.keys.sorted().map { task in
            let epochs = (byTask[task] ?? []).sorted { $0.key.epoch < $1.key.epoch }
            return TaskProgress(
                taskID: task.rawValue, currentEpoch: epochs.last?.key.epoch ?? 0,
                epochs: epochs.map { summary in
                    Epoch(
                        epoch: summary.key.epoch, doneShards: summary.done, totalShards: summary.total,
                        shardsPerWorker: Dictionary(
                            uniqueKeysWithValues: summary.remainingPerMember.map { ($0.worker.rawValue, $0.remaining) }),
                        unownedShards: summary.unowned, inProgressShards: summary.inProgress,
                        committedSamples: summary.committedSamples, totalSamples: summary.totalSamples)
                })
        }
    }
}

/// `GET /api/barriers`.
struct BarriersBody: ResponseEncodable {
    struct Open: Encodable {
        var taskID: String
        var name: String
        var generation: UInt64
        var arrived: Int
        var expected: Int
        var missingRanks: [Int]
        var missingWorkers: [String]
        var ageSeconds: Double
        var timeoutInSeconds: Double

        enum CodingKeys: String, CodingKey {
            case name, generation, arrived, expected
            case taskID = "task_id"
            case missingRanks = "missing_ranks"
            case missingWorkers = "missing_workers"
            case ageSeconds = "age_seconds"
            case timeoutInSeconds = "timeout_in_seconds"
        }
    }

    /// A histogram: count, mean, percentiles, and the cumulative bucket counts (Prometheus style, bounds in seconds).
    struct Histogram: Encodable {
        var count: Int
        var sumSeconds: Double
        @ExplicitNull var meanSeconds: Double?
        @ExplicitNull var p50Seconds: Double?
        @ExplicitNull var p90Seconds: Double?
        @ExplicitNull var p99Seconds: Double?
        var maxSeconds: Double
        var buckets: [Bucket]

        struct Bucket: Encodable {
            @ExplicitNull var le: Double?
            var count: Int
        }

        enum CodingKeys: String, CodingKey {
            case count, buckets
            case sumSeconds = "sum_seconds"
            case meanSeconds = "mean_seconds"
            case p50Seconds = "p50_seconds"
            case p90Seconds = "p90_seconds"
            case p99Seconds = "p99_seconds"
            case maxSeconds = "max_seconds"
        }

        init(_ histogram: LatencyHistogram) {
            count = histogram.count
            sumSeconds = histogram.sum
            meanSeconds = histogram.mean
            p50Seconds = histogram.percentile(0.5)
            p90Seconds = histogram.percentile(0.9)
            p99Seconds = histogram.percentile(0.99)
            maxSeconds = histogram.max
            var cumulative = 0
            buckets = histogram.counts.enumerated().map { index, count in
                cumulative += count
                // The last bucket is +Inf: `le` is null.
                return Bucket(
                    le: index < LatencyHistogram.bounds.count ? LatencyHistogram.bounds[index] : nil, count: cumulative)
            }
        }
    }

    var open: [Open]
    var released: Int
    var failed: Int
    var waitTime: Histogram
    var releaseLatency: Histogram

    enum CodingKeys: String, CodingKey {
        case open, released, failed
        case waitTime = "wait_time"
        case releaseLatency = "release_latency"
    }

    init(_ status: BarrierStatus) {
        open = status.open.map { barrier in
            Open(
                taskID: barrier.id.key.task.rawValue, name: barrier.id.key.name, generation: barrier.id.generation,
                arrived: barrier.arrived, expected: barrier.expected, missingRanks: barrier.missing.map(\.rank),
                missingWorkers: barrier.missing.map(\.worker.rawValue), ageSeconds: barrier.age.seconds,
                timeoutInSeconds: barrier.timeoutIn.seconds)
        }
        released = status.released
        failed = status.failed
        waitTime = Histogram(status.waitTime)
        releaseLatency = Histogram(status.releaseLatency)
    }
}

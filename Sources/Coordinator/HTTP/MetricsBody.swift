import Foundation
import Hummingbird
import RuntimeCore

/// `GET /api/metrics`: rates, counts and latency percentiles as JSON (the same figures as `/metrics`, for people).
struct MetricsBody: ResponseEncodable {
    struct RPC: Encodable {
        var count: Int
        var errors: [String: Int]
        var latency: BarriersBody.Histogram
    }

    struct Barriers: Encodable {
        var open: Int
        var released: Int
        var failed: Int
        var waitTime: BarriersBody.Histogram
        var releaseLatency: BarriersBody.Histogram

        enum CodingKeys: String, CodingKey {
            case open, released, failed
            case waitTime = "wait_time"
            case releaseLatency = "release_latency"
        }
    }

    struct Checkpoints: Encodable {
        var byStatus: [String: Int]
        var commitLatency: BarriersBody.Histogram

        enum CodingKeys: String, CodingKey {
            case byStatus = "by_status"
            case commitLatency = "commit_latency"
        }
    }

    var uptimeSeconds: Double
    var heartbeatsPerSecond: Double
    var heartbeatsTotal: Int
    var workers: [String: Int]
    var sessions: Int
    var tasks: [String: Int]
    var rpc: [String: RPC]
    var barriers: Barriers
    var checkpoints: Checkpoints
    var history: History

    /// The sparklines' data: one point per 5 s for the last 10 minutes, oldest first.
    struct History: Encodable {
        struct Point: Encodable {
            var at: Date
            var heartbeatsPerSecond: Double
            var stepsPerSecond: Double
            var workers: Int

            enum CodingKeys: String, CodingKey {
                case at, workers
                case heartbeatsPerSecond = "heartbeats_per_second"
                case stepsPerSecond = "steps_per_second"
            }
        }

        var intervalSeconds = ActivityHistory.interval.seconds
        var points: [Point]

        enum CodingKeys: String, CodingKey {
            case points
            case intervalSeconds = "interval_seconds"
        }
    }

    enum CodingKeys: String, CodingKey {
        case workers, sessions, tasks, rpc, barriers, checkpoints, history
        case uptimeSeconds = "uptime_seconds"
        case heartbeatsPerSecond = "heartbeats_per_second"
        case heartbeatsTotal = "heartbeats_total"
    }

    init(_ snapshot: MetricsSnapshot, rpc figures: [String: CoordinatorMetrics.RPCFigures]) {
        uptimeSeconds = snapshot.uptime.seconds
        heartbeatsPerSecond = snapshot.heartbeatsPerSecond
        heartbeatsTotal = snapshot.heartbeatsTotal
        workers = Dictionary(
            uniqueKeysWithValues: WorkerHealth.allCases.map { ($0.rawValue, snapshot.workers[$0] ?? 0) })
        sessions = snapshot.sessions
        tasks = Dictionary(
            uniqueKeysWithValues: TaskRecord.Status.allCases.map { ($0.rawValue, snapshot.tasks[$0] ?? 0) })
        rpc = figures.mapValues {
            RPC(count: $0.latency.count, errors: $0.errors, latency: BarriersBody.Histogram($0.latency))
        }
        barriers = Barriers(
            open: snapshot.barriers.open.count, released: snapshot.barriers.released,
            failed: snapshot.barriers.failed, waitTime: BarriersBody.Histogram(snapshot.barriers.waitTime),
            releaseLatency: BarriersBody.Histogram(snapshot.barriers.releaseLatency))
        checkpoints = Checkpoints(
            byStatus: snapshot.checkpoints, commitLatency: BarriersBody.Histogram(snapshot.checkpointLatency))
        history = History(
            points: snapshot.activity.map { point in
                History.Point(
                    at: Date(timeIntervalSince1970: Double(point.atMillis) / 1000),
                    heartbeatsPerSecond: point.heartbeatsPerSecond, stepsPerSecond: point.stepsPerSecond,
                    workers: point.workers)
            })
    }
}

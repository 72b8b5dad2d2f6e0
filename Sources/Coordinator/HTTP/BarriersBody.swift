import Hummingbird
import RuntimeCore

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

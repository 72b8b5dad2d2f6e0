import Checkpoint
import Foundation
import Hummingbird
import Storage

/// `GET /api/checkpoints`: every checkpoint attempt the coordinator knows, newest first, with its commit latency and
/// write throughput.
struct CheckpointsBody: ResponseEncodable {
    struct Store: Encodable {
        var uri: String
        var endpoint: String
        var region: String
    }

    struct Checkpoint: Encodable {
        var checkpointID: String
        var taskID: String
        var step: Int64
        var epoch: Int64
        var attempt: Int
        var status: String
        var worldSize: Int
        var parts: Int
        var missingRanks: [Int]
        var totalBytes: Int64
        var createdAt: Date
        @ExplicitNull var committedAt: Date?
        /// Opening to commit: how long the whole save took, as the job saw it.
        @ExplicitNull var commitLatencySeconds: Double?
        /// Bytes of every part over the slowest rank's write time.
        @ExplicitNull var writeBytesPerSecond: Double?
        var metrics: [String: Double]
        @ExplicitNull var abortReason: String?
        @ExplicitNull var manifestKey: String?

        enum CodingKeys: String, CodingKey {
            case step, epoch, attempt, status, parts, metrics
            case checkpointID = "checkpoint_id"
            case taskID = "task_id"
            case worldSize = "world_size"
            case missingRanks = "missing_ranks"
            case totalBytes = "total_bytes"
            case createdAt = "created_at"
            case committedAt = "committed_at"
            case commitLatencySeconds = "commit_latency_seconds"
            case writeBytesPerSecond = "write_bytes_per_second"
            case abortReason = "abort_reason"
            case manifestKey = "manifest_key"
        }

        init(_ record: CheckpointRecord) {
            checkpointID = record.id.description
            taskID = record.id.task.rawValue
            step = record.id.step
            epoch = record.epoch
            attempt = record.id.attempt
            status = record.status.rawValue
            worldSize = record.worldSize
            parts = record.parts.count
            missingRanks = record.status == .pending ? record.missingRanks : []
            totalBytes = record.totalBytes
            createdAt = Date(timeIntervalSince1970: Double(record.createdAtMs) / 1000)
            committedAt = record.committedAtMs.map { Date(timeIntervalSince1970: Double($0) / 1000) }
            commitLatencySeconds = record.committedAtMs.map { Double($0 - record.createdAtMs) / 1000 }
            writeBytesPerSecond = record.writeBytesPerSecond
            metrics = record.metrics.filter(\.value.isFinite)
            abortReason = record.abortReason
            manifestKey = record.status == .committed ? record.id.manifestKey.rawValue : nil
        }
    }

    @ExplicitNull var store: Store?
    var checkpoints: [Checkpoint]

    init(records: [CheckpointRecord], location: BlobStoreLocation?) {
        store = location.map { Store(uri: $0.uri, endpoint: $0.endpoint, region: $0.region) }
        checkpoints = records.sorted {
            $0.createdAtMs > $1.createdAtMs || ($0.createdAtMs == $1.createdAtMs && $0.id > $1.id)
        }
        .map(Checkpoint.init)
    }
}

import DataShard
import Foundation
import Hummingbird
import RuntimeCore

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

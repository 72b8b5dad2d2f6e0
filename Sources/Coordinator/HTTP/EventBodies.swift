import RuntimeCore

// The `data` of each event type of `GET /api/events` (docs/API.md). Bodies the API already has (a worker, a task, a
// checkpoint, a log entry) are reused, so an event carries exactly what the matching GET would show.

/// `hello`: the first event of every connection.
struct HelloEventBody: Encodable {
    var runID: String
    var version = DTRuntimeVersion.current
    var lastEventID: UInt64

    enum CodingKeys: String, CodingKey {
        case version
        case runID = "run_id"
        case lastEventID = "last_event_id"
    }
}

/// `reset`: the client must reload `GET /api/dashboard`.
struct ResetEventBody: Encodable {
    var reason: String
}

/// `worker`: what happened to the worker, and the worker as `GET /api/workers` shows it.
struct WorkerEventBody: Encodable {
    /// `joined`, `left`, `died`, `suspected`, `recovered` or `metrics`.
    var change: String
    var worker: WorkerBody
}

/// `dataset_progress`: one dataset epoch's progress in a task.
struct DatasetProgressEventBody: Encodable {
    var dataset: String
    var taskID: String
    var epoch: Int64
    var doneShards: Int
    var inProgressShards: Int
    var totalShards: Int
    var committedSamples: Int64
    var totalSamples: Int64

    enum CodingKeys: String, CodingKey {
        case dataset, epoch
        case taskID = "task_id"
        case doneShards = "done_shards"
        case inProgressShards = "in_progress_shards"
        case totalShards = "total_shards"
        case committedSamples = "committed_samples"
        case totalSamples = "total_samples"
    }
}

/// `barrier`: a generation ended.
struct BarrierEventBody: Encodable {
    /// `released`, `aborted` or `timed_out`.
    var change: String
    var taskID: String
    var name: String
    var generation: UInt64
    /// How many workers arrived.
    var participants: Int
    var missingRanks: [Int]
    var missingWorkers: [String]
    /// The last arrival's time minus the first's.
    var waitSeconds: Double

    enum CodingKeys: String, CodingKey {
        case change, name, generation, participants
        case taskID = "task_id"
        case missingRanks = "missing_ranks"
        case missingWorkers = "missing_workers"
        case waitSeconds = "wait_seconds"
    }
}

/// `checkpoint`: a checkpoint was committed or aborted.
struct CheckpointEventBody: Encodable {
    /// `committed` or `aborted`.
    var change: String
    var checkpoint: CheckpointsBody.Checkpoint
}

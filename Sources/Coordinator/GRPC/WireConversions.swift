import DataShard
import RuntimeCore
import RuntimeProto

// MARK: Requests -> validated core values

extension WorkerSpec {
    /// Validates a registration request field by field.
    init(validating request: Dtruntime_V1_RegisterWorkerRequest) throws(CoreError) {
        try WireTypeCheck.check(request)
        self.init(
            id: try WorkerID(request.workerID),
            taskID: try TaskID(request.taskID),
            host: try Validation.host(request.host),
            port: try Validation.port(Int(request.port)),
            gpuCount: try Validation.gpuCount(Int(request.gpuCount)),
            labels: try Validation.labels(request.labels))
    }
}

/// A heartbeat's validated fields.
struct ValidatedHeartbeat {
    var workerID: WorkerID
    var step: Int64
    var metrics: [String: Double]

    init(_ request: Dtruntime_V1_HeartbeatRequest) throws(CoreError) {
        try WireTypeCheck.check(request)
        workerID = try WorkerID(request.workerID)
        step = try Validation.step(request.step)
        metrics = try Validation.metrics(request.metrics)
    }
}

// MARK: Core values -> responses

extension Dtruntime_V1_MembershipView {
    init(_ view: MembershipView) {
        self.init()
        taskID = view.taskID.rawValue
        rank = Int32(view.rank ?? -1)
        worldSize = Int32(clamping: view.worldSize)
        membershipEpoch = view.epoch
        command = Dtruntime_V1_Command(view.command)
        reason = view.reason
        status = Dtruntime_V1_WorkerStatus(view.health)
    }
}

extension Dtruntime_V1_Command {
    init(_ command: WorkerCommand) {
        switch command {
        case .proceed: self = .continue
        case .stop: self = .stop
        case .rejoin: self = .rejoin
        }
    }
}

extension Dtruntime_V1_WorkerStatus {
    init(_ health: WorkerHealth) {
        switch health {
        case .healthy: self = .healthy
        case .suspect: self = .suspect
        case .dead: self = .dead
        case .left: self = .left
        }
    }
}

extension Dtruntime_V1_SessionEvent {
    init(_ update: SessionUpdate) {
        self.init()
        kind = update.kind == .heartbeatAck ? .heartbeatAck : .push
        view = Dtruntime_V1_MembershipView(update.view)
    }
}

extension Duration {
    /// Milliseconds as a proto `uint32` (saturating).
    var protoMillis: UInt32 { UInt32(clamping: milliseconds) }
}

extension Dtruntime_V1_DatasetSpec {
    init(_ spec: DatasetSpec) {
        self.init()
        name = spec.name
        totalSamples = spec.totalSamples
        shardSize = spec.shardSize
        shuffle = spec.shuffle
        seed = spec.seed
    }
}

extension Dtruntime_V1_Shard {
    init(_ lease: ShardLease) {
        self.init()
        shardID = lease.shard
        start = lease.samples.lowerBound
        end = lease.samples.upperBound
        sampleSeed = lease.sampleSeed
        consumed = lease.consumed
    }
}

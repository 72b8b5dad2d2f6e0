import DataShard
import Foundation
import RuntimeCore
import RuntimeProto

// MARK: Requests -> validated core values

extension WorkerSpec {
    /// Validates a registration request field by field.
    init(validating request: Dtruntime_V1_RegisterWorkerRequest) throws(CoreError) {
        self.init(
            id: try WorkerID(request.workerID),
            taskID: try TaskID(request.taskID),
            host: try Validation.host(request.host),
            port: try Validation.port(Int(request.port)),
            gpuCount: try Validation.gpuCount(Int(request.gpuCount)),
            labels: try Validation.labels(request.labels),
            incarnation: try Validation.incarnation(request.incarnation))
    }
}

extension WorldSizeHint {
    /// The world size a registration asks for, validated.
    init(validating request: Dtruntime_V1_RegisterWorkerRequest) throws(CoreError) {
        let most = Int(request.taskMaxWorldSize)
        let least = Int(request.taskMinWorldSize)
        guard (0...65_536).contains(most) else {
            throw .invalid("task_max_world_size", "must be between 0 (not said) and 65536", got: String(most))
        }
        guard least == 0 || (most > 0 && (1...most).contains(least)) else {
            throw .invalid(
                "task_min_world_size",
                "must be between 0 (the same as task_max_world_size) and task_max_world_size "
                    + "(\(most))", got: String(least))
        }
        self.init(min: least, max: most)
    }
}

/// A heartbeat's validated fields.
struct ValidatedHeartbeat {
    var workerID: WorkerID
    var step: Int64
    var metrics: [String: Double]

    init(_ request: Dtruntime_V1_HeartbeatRequest) throws(CoreError) {
        workerID = try WorkerID(request.workerID)
        step = try Validation.step(request.step)
        metrics = try Validation.metrics(request.metrics)
    }
}

// MARK: Core values -> responses

extension Dtruntime_V1_TaskSettings {
    /// A task's settings as workers see them (only the id when the task has no record).
    init(_ record: TaskRecord?, id: TaskID) {
        self.init()
        taskID = id.rawValue
        guard let record else { return }
        minWorldSize = Int32(record.effectiveMinWorldSize)
        maxWorldSize = Int32(record.worldSize)
        dataset = record.dataset ?? ""
        epochs = Int32(record.epochs ?? 0)
        configJson = record.configJSON
    }
}

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

extension ReduceInput {
    /// Decodes a reduce payload: a known operation and type, and little-endian values filling whole elements.
    init(_ payload: Dtruntime_V1_ReducePayload) throws(CoreError) {
        let op: ReduceOp
        switch payload.op {
        case .sum: op = .sum
        case .mean: op = .mean
        case .max: op = .max
        case .min: op = .min
        default:
            throw .invalid("payload.op", "must be REDUCE_OP_SUM, _MEAN, _MAX or _MIN", got: String(payload.op.rawValue))
        }
        let bytes = payload.data
        switch payload.dtype {
        case .float32:
            guard bytes.count % 4 == 0 else {
                throw .invalid(
                    "payload.data", "must hold whole float32 values (a multiple of 4 bytes)",
                    got: "\(bytes.count) bytes")
            }
            self.init(op: op, vector: .float32(Self.values(bytes, of: UInt32.self).map(Float.init(bitPattern:))))
        case .float64:
            guard bytes.count % 8 == 0 else {
                throw .invalid(
                    "payload.data", "must hold whole float64 values (a multiple of 8 bytes)",
                    got: "\(bytes.count) bytes")
            }
            self.init(op: op, vector: .float64(Self.values(bytes, of: UInt64.self).map(Double.init(bitPattern:))))
        default:
            throw .invalid(
                "payload.dtype", "must be DTYPE_FLOAT32 or DTYPE_FLOAT64", got: String(payload.dtype.rawValue))
        }
    }

    /// Little-endian unsigned integers read from unaligned bytes.
    private static func values<T: FixedWidthInteger>(_ bytes: Data, of _: T.Type) -> [T] {
        bytes.withUnsafeBytes { raw in
            (0..<raw.count / MemoryLayout<T>.size).map {
                T(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self))
            }
        }
    }
}

extension Dtruntime_V1_ReducePayload {
    init(_ input: ReduceInput) {
        self.init()
        switch input.op {
        case .sum: op = .sum
        case .mean: op = .mean
        case .max: op = .max
        case .min: op = .min
        }
        switch input.vector {
        case .float32(let values):
            dtype = .float32
            data = Self.bytes(values.map { $0.bitPattern.littleEndian })
        case .float64(let values):
            dtype = .float64
            data = Self.bytes(values.map { $0.bitPattern.littleEndian })
        }
    }

    private static func bytes<T: FixedWidthInteger>(_ values: [T]) -> Data {
        values.withUnsafeBytes { Data($0) }
    }
}

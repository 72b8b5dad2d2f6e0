import Foundation
import GRPCCore
public import Logging
public import RuntimeProto

/// How a simulated training process trains: its dataset, pace and the rhythm of its barriers and checkpoints.
public struct TrainingSettings: Sendable {
    /// The dataset every worker of the task reads (registered by each worker: registering the same spec again is a
    /// no-op).
    public var dataset = Dtruntime_V1_DatasetSpec.with {
        $0.name = "demo-digits"
        $0.totalSamples = 102_400
        $0.shardSize = 1024
        $0.shuffle = true
        $0.seed = 7
    }
    /// Samples per step.
    public var batchSize: Int64 = 32
    /// How long a step takes (±20 %).
    public var stepTime = Duration.milliseconds(100)
    /// Steps between progress commits of the shard in hand.
    public var commitEvery: Int64 = 8
    /// Steps between gradient synchronisations (an allreduce over every member).
    public var syncEvery: Int64 = 10
    /// Steps between checkpoints (a multiple of `syncEvery`, so that every rank saves the same step).
    public var checkpointEvery: Int64 = 50
    /// Bytes of each rank's checkpoint part.
    public var checkpointBytes = 4096
    /// How often the worker heartbeats (the coordinator's interval, from the registration reply).
    public var heartbeatInterval = Duration.seconds(1)

    /// The defaults: a 100-shard dataset, 10 steps a second, a sync a second and a checkpoint every 5 seconds.
    public init() {}
}

/// One process of a simulated worker, from registration to exit: it heartbeats on its session stream, trains (takes
/// its shards and commits their progress, meets the others at an allreduce every few steps, saves its part of every
/// checkpoint) and leaves when its task is stopped. Cancelling ``run()`` is the process dying: no deregistration, the
/// stream breaks, and the coordinator declares it dead after its timeout, unless a new process of the same worker
/// registers first (then it counts as a restart).
public struct TrainingProcess: Sendable {
    /// The worker this process is.
    public let worker: SimulatedWorker
    let connections: SwarmConnections
    let hub: BarrierHub
    let parts: CheckpointPartWriter
    let settings: TrainingSettings
    let logger: Logger

    /// A process of `worker`; barrier calls go through `hub`, checkpoint parts through `parts`.
    public init(
        worker: SimulatedWorker, connections: SwarmConnections, hub: BarrierHub, parts: CheckpointPartWriter,
        settings: TrainingSettings, logger: Logger
    ) {
        self.worker = worker
        self.connections = connections
        self.hub = hub
        self.parts = parts
        self.settings = settings
        self.logger = logger
    }

    /// Runs the process until its task stops (it deregisters and returns) or the calling task is cancelled (it dies).
    public func run() async {
        worker.restart()
        do {
            try await registerUntilAdmitted()
        } catch {
            if !Task.isCancelled { logger.debug("demo worker could not register", metadata: meta(error)) }
            return
        }
        let interval = settings.heartbeatInterval
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await keepSession() }
            group.addTask {
                while !Task.isCancelled {
                    worker.beat()
                    try? await Task.sleep(for: interval)
                }
            }
            group.addTask { await train() }
            // The training ends only when the task stops (or the process dies): then everything else stops too.
            _ = await group.next()
            group.cancelAll()
        }
        if !Task.isCancelled { try? await worker.deregister(connections, reason: "the task was stopped") }
    }

    // MARK: Membership

    private func registerUntilAdmitted() async throws {
        while true {
            do {
                try await worker.register(connections)
                return
            } catch let error as RPCError where error.dtrReason == "TASK_FULL" {
                // As the SDK's Worker: wait for a place.
                try await Task.sleep(for: .milliseconds(Int.random(in: 500...1000)))
            }
        }
    }

    /// Keeps the session stream open, reopening it after a break, and registers again when told to rejoin.
    private func keepSession() async {
        while !Task.isCancelled {
            do {
                try await worker.runSession(connections)
            } catch {
                if Task.isCancelled { return }
                logger.debug("demo worker's session ended", metadata: meta(error))
            }
            if worker.view.command == .rejoin || worker.sawRejoin {
                worker.restart()
                try? await registerUntilAdmitted()
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    // MARK: Training

    private func train() async {
        let curve = TrainingCurve(seed: worker.id.hashValue & 0xffff)
        var step = await resumeStep()
        var epoch: Int64 = 0
        var shards: [Dtruntime_V1_Shard] = []
        var consumed: Int64 = 0
        var nextFetch = ContinuousClock.now
        var membershipEpoch: UInt64 = 0
        _ = try? await call("RegisterDataset") {
            try await connections.stub(worker.connection).registerDataset(
                .with { $0.spec = settings.dataset }, metadata: connections.metadata)
        }
        while !Task.isCancelled {
            let jitter = Double.random(in: 0.8...1.2)
            try? await Task.sleep(for: settings.stepTime * jitter)
            if worker.view.command == .stop { return }
            step += 1
            worker.progress(step: step, metrics: curve.metrics(at: step))

            // Data: the shard in hand, or the next ones; a finished epoch moves on to the next.
            if shards.isEmpty, ContinuousClock.now >= nextFetch {
                if let assignment = try? await call(
                    "GetShardAssignment",
                    {
                        try await connections.stub(worker.connection).getShardAssignment(
                            .with {
                                $0.dataset = settings.dataset.name
                                $0.workerID = worker.id
                                $0.epoch = epoch
                            }, metadata: worker.metadata(connections))
                    })
                {
                    shards = assignment.shards
                    membershipEpoch = assignment.membershipEpoch
                    consumed = shards.first?.consumed ?? 0
                    if shards.isEmpty, assignment.doneShards == assignment.totalShards {
                        epoch += 1
                    } else if shards.isEmpty {
                        nextFetch = ContinuousClock.now + .milliseconds(500)
                    }
                } else {
                    nextFetch = ContinuousClock.now + .seconds(1)
                }
            }
            if let shard = shards.first {
                consumed = min(consumed + settings.batchSize, shard.end - shard.start)
                let finished = consumed == shard.end - shard.start
                if finished || step % settings.commitEvery == 0 {
                    let committed = try? await call("ReportShardProgress") {
                        try await connections.stub(worker.connection).reportShardProgress(
                            .with {
                                $0.dataset = settings.dataset.name
                                $0.workerID = worker.id
                                $0.epoch = epoch
                                $0.membershipEpoch = membershipEpoch
                                $0.shardID = shard.shardID
                                $0.consumed = consumed
                            }, metadata: worker.metadata(connections))
                    }
                    // Done, or refused (the shard moved to another worker): on to the next one.
                    if finished || committed == nil {
                        shards.removeFirst()
                        consumed = shards.first?.consumed ?? 0
                    }
                }
            }

            if step % settings.syncEvery == 0 {
                // The gradient synchronisation: every member adopts the furthest step, so that they all save the same
                // checkpoints.
                if let synced = await allreduceMax(step) { step = max(step, synced) }
            }
            if step % settings.checkpointEvery == 0 {
                await checkpoint(step: step, epoch: epoch, metrics: curve.metrics(at: step))
            }
        }
    }

    /// The step of the task's latest checkpoint (a restarted process resumes from it), or 0.
    private func resumeStep() async -> Int64 {
        let manifest = try? await connections.stub(worker.connection).loadCheckpoint(
            .with {
                $0.taskID = worker.task
                $0.latest = true
            }, metadata: worker.metadata(connections))
        return manifest?.manifest.step ?? 0
    }

    private func allreduceMax(_ step: Int64) async -> Int64? {
        let value = Double(step)
        let bytes = withUnsafeBytes(of: value.bitPattern.littleEndian) { Data($0) }
        do {
            let reply = try await hub.arrive(
                .with {
                    $0.name = "grad-sync"
                    $0.workerID = worker.id
                    $0.workerSecret = worker.secret
                    $0.membershipEpoch = worker.view.membershipEpoch
                    $0.timeoutMs = 30_000
                    $0.payload = .with {
                        $0.op = .max
                        $0.dtype = .float64
                        $0.data = bytes
                    }
                })
            guard reply.result.data.count == 8 else { return nil }
            let bits = reply.result.data.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            return Int64(Double(bitPattern: UInt64(littleEndian: bits)))
        } catch {
            // Aborted by a death or a join, or a stale epoch: the next view brings the new membership.
            worker.recorder.count("barrier_failures")
            return nil
        }
    }

    private func checkpoint(step: Int64, epoch: Int64, metrics: [String: Double]) async {
        do {
            let stub = connections.stub(worker.connection)
            let grant = try await stub.saveCheckpoint(
                .with {
                    $0.workerID = worker.id
                    $0.membershipEpoch = worker.view.membershipEpoch
                    $0.step = step
                    $0.epoch = epoch
                    $0.metrics = metrics.filter { $0.value.isFinite }
                    $0.metadata = ["writer": "dtr swarm"]
                }, metadata: worker.metadata(connections))
            let started = ContinuousClock.now
            var bytes = [UInt8](repeating: 0, count: settings.checkpointBytes)
            for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: index &+ Int(step)) }
            let (size, sha256) = try await parts.write(bytes, key: grant.objectKey, location: grant.store)
            _ = try await stub.reportCheckpointPart(
                .with {
                    $0.workerID = worker.id
                    $0.checkpointID = grant.checkpointID
                    $0.sizeBytes = size
                    $0.sha256 = sha256
                    $0.writeSeconds = (ContinuousClock.now - started).seconds
                }, metadata: worker.metadata(connections))
        } catch {
            // A rank joined or died meanwhile (stale epoch, aborted checkpoint): the next checkpoint will do.
            worker.recorder.count("checkpoint_failures")
        }
    }

    private func call<Result: Sendable>(_ method: String, _ body: () async throws -> Result) async throws -> Result {
        do {
            return try await retrying(worker.recorder, timeout: .seconds(10), body)
        } catch {
            if !Task.isCancelled { worker.recorder.count(errorKey(method, error)) }
            throw error
        }
    }

    private func meta(_ error: any Error) -> Logger.Metadata {
        ["worker_id": "\(worker.id)", "error": "\(error)"]
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

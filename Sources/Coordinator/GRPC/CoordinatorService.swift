import Checkpoint
import DataShard
public import GRPCCore
import RuntimeCore
public import RuntimeProto

/// The gRPC service workers talk to. Thin: validate, call the engine, encode. Errors become statuses with reasons
/// (``RPCCallInterceptor``, and the error types' `RPCErrorConvertible` conformances), and wire types are checked before
/// a handler runs (``WireTypeCheckInterceptor``): ``interceptors(metrics:now:)`` are the ones every server of this
/// service installs.
public struct CoordinatorService: Dtruntime_V1_Coordinator.SimpleServiceProtocol {
    private let engine: CoordinatorEngine

    /// A service backed by `engine`.
    public init(engine: CoordinatorEngine) {
        self.engine = engine
    }

    /// The interceptors this service relies on, innermost last: outcomes and metrics, wire types, then the worker
    /// secret a call presents (see ``WorkerSecretInterceptor``). Servers put their own (rate limits, authentication)
    /// before them.
    public static func interceptors(metrics: CoordinatorMetrics, now: @escaping @Sendable () -> Duration)
        -> [any ServerInterceptor]
    {
        [RPCCallInterceptor(metrics: metrics, now: now), WireTypeCheckInterceptor(), WorkerSecretInterceptor()]
    }

    // MARK: Membership

    public func registerWorker(
        request: Dtruntime_V1_RegisterWorkerRequest, context: ServerContext
    ) async throws -> Dtruntime_V1_RegisterWorkerResponse {
        let spec = try WorkerSpec(validating: request)
        let (view, secret) = try await engine.register(
            spec, hint: try WorldSizeHint(validating: request), presenting: WorkerSecret.presented)
        let task = await engine.taskRecord(spec.taskID)
        let config = engine.membershipConfig
        return .with {
            $0.view = Dtruntime_V1_MembershipView(view)
            $0.task = Dtruntime_V1_TaskSettings(task, id: spec.taskID)
            $0.heartbeatIntervalMs = config.heartbeatInterval.protoMillis
            $0.suspectAfterMs = config.suspectAfter.protoMillis
            $0.deadAfterMs = config.deadAfter.protoMillis
            $0.coordinatorVersion = DTRuntimeVersion.current
            $0.workerSecret = secret
        }
    }

    public func heartbeat(
        request: Dtruntime_V1_HeartbeatRequest, context: ServerContext
    ) async throws -> Dtruntime_V1_HeartbeatResponse {
        let beat = try ValidatedHeartbeat(request)
        try await authenticate(beat.workerID)
        // Stamped before the call queues for the engine: the failure detector counts it even if the engine is busy.
        let arrivedAt = engine.heard(beat.workerID)
        let view = try await engine.heartbeat(
            beat.workerID, step: beat.step, metrics: beat.metrics, arrivedAt: arrivedAt)
        return .with { $0.view = Dtruntime_V1_MembershipView(view) }
    }

    public func deregisterWorker(
        request: Dtruntime_V1_DeregisterWorkerRequest, context: ServerContext
    ) async throws -> Dtruntime_V1_DeregisterWorkerResponse {
        let id = try WorkerID(request.workerID)
        guard request.reason.utf8.count <= 1024 else {
            throw CoreError.invalid(
                "reason", "must be at most 1024 bytes", got: "\(request.reason.utf8.count) bytes")
        }
        try await authenticate(id)
        let epoch = try await engine.deregister(id, reason: request.reason, failed: request.failed)
        return .with { $0.membershipEpoch = epoch }
    }

    /// A worker's long-lived session: heartbeats up, acknowledgements and pushes down.
    ///
    /// A reader task reads the heartbeats, checks the worker's secret on the first, records each one's arrival
    /// (``CoordinatorEngine/heard(_:)``) and leaves it in the session's ``SessionChannel``, which goes to the engine
    /// (``CoordinatorEngine/hand(_:)``) without waiting for it: the engine takes one at a time from each stream (those
    /// that arrive meanwhile fold into one) and attaches the stream to the worker on the first. The handler itself
    /// writes what the engine queued on the channel (acknowledgements and pushes, in the engine's order). The stream
    /// ends when the worker closes its side (OK), sends something invalid (INVALID_ARGUMENT / NOT_FOUND), or the
    /// coordinator closes the session (UNAVAILABLE: shutting down, or replaced by a newer stream of the same worker).
    public func workerSession(
        request: RPCAsyncSequence<Dtruntime_V1_SessionRequest, any Error>,
        response: RPCWriter<Dtruntime_V1_SessionEvent>,
        context: ServerContext
    ) async throws {
        let channel = SessionChannel()
        // Not a child task: reading the request stream does not stop on cancellation, so when the coordinator closes
        // the session the handler returns without it, and the transport ends the stream.
        let reader = Task { await readHeartbeats(from: request, into: channel) }
        let engine = self.engine
        defer {
            reader.cancel()
            if let (worker, token) = channel.served() { engine.sessions.detach(worker, token: token) }
        }
        while let update = try await channel.next(handOff: { engine.hand(channel) }) {
            try await response.write(Dtruntime_V1_SessionEvent(update))
        }
        // A close of the coordinator's outranks the engine's refusal of a heartbeat (the worker is no longer known):
        // the worker reconnects rather than register.
        if let reason = channel.closeReason {
            throw RPCError(code: .unavailable, message: reason)
        }
        if let refusal = channel.refusal { throw refusal }
        // Otherwise the worker closed its side (OK), or the call was cancelled.
    }

    /// Reads the session's heartbeats as they arrive, checks them (the first one's worker secret included, before
    /// its arrival is recorded), and leaves them in `channel`, handing it to the engine when the channel says so.
    private func readHeartbeats(
        from request: RPCAsyncSequence<Dtruntime_V1_SessionRequest, any Error>, into channel: SessionChannel
    ) async {
        var worker: WorkerID?
        do {
            for try await message in request {
                guard case .heartbeat(let heartbeat) = message.kind else {
                    throw CoreError.invalid(
                        "kind", "must be a heartbeat (the only session message this coordinator knows)")
                }
                let beat = try ValidatedHeartbeat(heartbeat)
                if let worker, worker != beat.workerID {
                    throw CoreError.invalid(
                        "worker_id", "must stay the same on one session stream (it started as \(worker))",
                        got: Validation.quoted(beat.workerID.rawValue))
                }
                if worker == nil {
                    // Before its arrival counts: a stream naming a worker whose secret it lacks must not keep that
                    // worker alive. Its first heartbeat waits for the engine; later ones are read as they come.
                    try await authenticate(beat.workerID)
                    worker = beat.workerID
                }
                if channel.put(beat, arrivedAt: engine.heard(beat.workerID)) { engine.hand(channel) }
            }
            channel.readerEnded(nil)
        } catch {
            channel.readerEnded(error)
        }
    }

    // MARK: Datasets and shards

    public func registerDataset(
        request: Dtruntime_V1_RegisterDatasetRequest, context: ServerContext
    ) async throws -> Dtruntime_V1_RegisterDatasetResponse {
        guard request.hasSpec else { throw CoreError.invalid("spec", "must be set") }
        let spec = try DatasetSpec(
            name: request.spec.name, totalSamples: request.spec.totalSamples, shardSize: request.spec.shardSize,
            shuffle: request.spec.shuffle, seed: request.spec.seed)
        let (record, created) = try await engine.registerDataset(spec)
        return .with {
            $0.spec = Dtruntime_V1_DatasetSpec(record.spec)
            $0.numShards = record.spec.shardCount
            $0.registeredAtUnixMs = record.registeredAtMillis
            $0.created = created
        }
    }

    public func getShardAssignment(
        request: Dtruntime_V1_GetShardAssignmentRequest, context: ServerContext
    ) async throws -> Dtruntime_V1_GetShardAssignmentResponse {
        let dataset = try Validation.name(request.dataset, field: "dataset")
        let worker = try WorkerID(request.workerID)
        let epoch = try Validation.epoch(request.epoch)
        try await authenticate(worker)
        let page = try AssignmentPage(token: request.pageToken, maxShards: request.maxShards)
        let assignment = try await engine.shardAssignment(dataset: dataset, worker: worker, epoch: epoch, page: page)
        return .with {
            $0.dataset = dataset
            $0.epoch = epoch
            $0.membershipEpoch = assignment.membershipEpoch
            $0.shards = assignment.leases.map(Dtruntime_V1_Shard.init)
            $0.totalShards = Int64(assignment.progress.total)
            $0.doneShards = Int64(assignment.progress.done)
            $0.shuffle = assignment.shuffle
            $0.nextPageToken = AssignmentPage.token(after: assignment.next)
        }
    }

    public func reportShardProgress(
        request: Dtruntime_V1_ReportShardProgressRequest, context: ServerContext
    ) async throws -> Dtruntime_V1_ReportShardProgressResponse {
        let worker = try WorkerID(request.workerID)
        try await authenticate(worker)
        let (record, progress) = try await engine.reportShardProgress(
            dataset: try Validation.name(request.dataset, field: "dataset"),
            worker: worker, epoch: try Validation.epoch(request.epoch),
            membershipEpoch: request.membershipEpoch, shard: request.shardID, consumed: request.consumed)
        return .with {
            $0.consumed = record.consumed
            $0.done = record.state == .done
            $0.doneShards = Int64(progress.done)
            $0.totalShards = Int64(progress.total)
        }
    }

    // MARK: Checkpoints

    public func saveCheckpoint(
        request: Dtruntime_V1_SaveCheckpointRequest, context: ServerContext
    ) async throws -> Dtruntime_V1_SaveCheckpointResponse {
        let worker = try WorkerID(request.workerID)
        try await authenticate(worker)
        let grant = try await engine.saveCheckpoint(
            worker: worker, membershipEpoch: request.membershipEpoch,
            step: try Validation.step(request.step), epoch: try Validation.epoch(request.epoch),
            metrics: try Self.checkpointMetrics(request.metrics),
            metadata: try Validation.metadata(request.metadata))
        return .with {
            $0.checkpointID = grant.record.id.description
            $0.rank = Int32(grant.rank)
            $0.worldSize = Int32(grant.record.worldSize)
            $0.store = Dtruntime_V1_StorageLocation(grant.location)
            $0.objectKey = grant.key.rawValue
            $0.deadlineUnixMs = grant.deadlineUnixMs
        }
    }

    public func reportCheckpointPart(
        request: Dtruntime_V1_ReportCheckpointPartRequest, context: ServerContext
    ) async throws -> Dtruntime_V1_ReportCheckpointPartResponse {
        let worker = try WorkerID(request.workerID)
        let id = try CheckpointID(parsing: request.checkpointID)
        var part: CheckpointRecord.Part?
        var failure: String?
        if request.failure.isEmpty {
            part = try CheckpointRecord.Part(validating: request)
        } else {
            guard request.failure.utf8.count <= 4096 else {
                throw CoreError.invalid(
                    "failure", "must be at most 4096 bytes", got: "\(request.failure.utf8.count) bytes")
            }
            failure = request.failure
        }
        try await authenticate(worker)
        let record = try await engine.reportCheckpointPart(
            id, worker: worker, part: part, failure: failure, wait: request.wait)
        return .with {
            $0.checkpointID = record.id.description
            $0.status = Dtruntime_V1_CheckpointStatus(record.status)
            $0.reportedParts = Int32(record.parts.count)
            $0.worldSize = Int32(record.worldSize)
            if record.status == .committed, let location = engine.checkpointLocation {
                $0.manifest = Dtruntime_V1_CheckpointManifest(record, location: location)
            }
            $0.abortReason = record.abortReason ?? ""
        }
    }

    public func loadCheckpoint(
        request: Dtruntime_V1_LoadCheckpointRequest, context: ServerContext
    ) async throws -> Dtruntime_V1_LoadCheckpointResponse {
        let worker = request.workerID.isEmpty ? nil : try WorkerID(request.workerID)
        let task: TaskID
        if !request.taskID.isEmpty {
            task = try TaskID(request.taskID)
        } else if let worker {
            task = try await engine.task(of: worker)
        } else {
            task = .default
        }
        var step: Int64?
        if case .step(let value) = request.which { step = try Validation.step(value) }
        let (record, restored) = try await engine.loadCheckpoint(
            task: task, step: step, restoreData: request.restoreData, worker: worker, secret: WorkerSecret.presented)
        guard let location = engine.checkpointLocation else {
            throw CheckpointError(
                .failedPrecondition, "this coordinator has no checkpoint store: start it with --checkpoint-store",
                reason: .noCheckpointStore)
        }
        return .with {
            $0.manifest = Dtruntime_V1_CheckpointManifest(record, location: location)
            $0.dataRestored = restored
        }
    }

    // MARK: Barriers

    public func barrierSync(
        request: Dtruntime_V1_BarrierSyncRequest, context: ServerContext
    ) async throws -> Dtruntime_V1_BarrierSyncResponse {
        let call = try BarrierCall(validating: request)
        try await authenticate(call.worker, secret: call.secret)
        let release = try await engine.barrierSync(
            name: call.name, worker: call.worker, membershipEpoch: call.membershipEpoch, arrival: call.arrival)
        return Dtruntime_V1_BarrierSyncResponse(release)
    }

    public func barrierStream(
        request: RPCAsyncSequence<Dtruntime_V1_BarrierStreamRequest, any Error>,
        response: RPCWriter<Dtruntime_V1_BarrierStreamReply>,
        context: ServerContext
    ) async throws {
        let clock = engine.now
        let outbox = BarrierStreamOutbox(metrics: engine.metrics, now: { clock().monotonic })
        let shutdown = engine.barrierStreams.register { outbox.close() }
        defer { engine.barrierStreams.unregister(shutdown) }
        // Not a child task, as in workerSession: reading the request stream does not stop on cancellation.
        let reader = Task { try await arrive(from: request, into: outbox) }
        defer { reader.cancel() }
        for await replies in outbox.batches {
            for reply in replies { try await response.write(reply) }
        }
        if outbox.isClosed { throw CoordinatorEngine.shuttingDownError }
        try await reader.value
    }

    /// Each call of each message is one BarrierSync call; its answer (or its error, which ends only that call) goes to
    /// `outbox`. A client breaking the stream's own rules (a call id reused while in flight, too many calls) ends it.
    private func arrive(
        from request: RPCAsyncSequence<Dtruntime_V1_BarrierStreamRequest, any Error>, into outbox: BarrierStreamOutbox
    ) async throws {
        do {
            for try await message in request {
                let started = engine.now().monotonic
                for call in message.calls {
                    try outbox.open(call.callID, at: started)
                    do {
                        // Here rather than in the interceptor: a bad call is answered in-band and ends only itself.
                        try WireTypeCheck.checkAll(call)
                        let arrival = try BarrierCall(validating: call.arrival)
                        try await authenticate(arrival.worker, secret: arrival.secret)
                        try await engine.barrierArrive(
                            name: arrival.name, worker: arrival.worker, membershipEpoch: arrival.membershipEpoch,
                            arrival: arrival.arrival, waiter: .streamed(outbox, callID: call.callID))
                    } catch {
                        outbox.answer([call.callID], .failure(error))
                    }
                }
            }
            outbox.inputEnded()
        } catch {
            outbox.inputEnded(abandoning: true)
            throw error
        }
    }

    /// Refuses a call that names `worker` without that worker's secret: `secret` when the message carries one (a
    /// shared BarrierStream), else the call's `dtr-worker-secret` metadata.
    private func authenticate(_ worker: WorkerID, secret: String? = nil) async throws {
        try await engine.authenticate(worker, secret: secret ?? WorkerSecret.presented)
    }

    /// Checkpoint metrics rank checkpoints for retention and go into JSON manifests: they must be finite.
    private static func checkpointMetrics(_ metrics: [String: Double]) throws(CoreError) -> [String: Double] {
        let valid = try Validation.metrics(metrics)
        if let (name, value) = valid.first(where: { !$0.value.isFinite }) {
            throw CoreError.invalid(
                "metrics[\(name)]", "must be a finite number (NaN and infinities cannot rank checkpoints)",
                got: "\(value)")
        }
        return valid
    }
}

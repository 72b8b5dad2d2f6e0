public import Checkpoint
import DataShard
import Foundation
public import RuntimeCore
public import Storage

/// What a rank is told when it opens a checkpoint.
public struct CheckpointGrant: Sendable {
    /// The checkpoint as it stands.
    public var record: CheckpointRecord
    /// The caller's rank.
    public var rank: Int
    /// Where to write.
    public var location: BlobStoreLocation
    /// The caller's part key.
    public var key: ObjectKey
    /// When the checkpoint is aborted if parts are still missing (Unix milliseconds).
    public var deadlineUnixMs: Int64
}

/// Checkpoints: the two-phase commit between the ranks of a task, with the coordinator as the commit point.
///
/// Ranks write their parts straight to the store; the engine checks each reported part against the store, writes
/// the manifest once every part is in, and only then records the commit, so a checkpoint is never visible before it
/// is whole. Aborted and retired checkpoints' objects are deleted; a periodic sweep removes what a crash left behind.
extension CoordinatorEngine {
    /// Opens or joins the checkpoint of `step` for `worker`'s task; returns once the opening is durable.
    public func saveCheckpoint(
        worker: WorkerID, membershipEpoch: UInt64, step: Int64, epoch: Int64, metrics: [String: Double],
        metadata: [String: String]
    ) async throws -> CheckpointGrant {
        let store = try checkpointStoreOrThrow()
        // The checkpoint records the data position: the ledgers must be loaded.
        try await dataReady()
        // Ranks are parts: a worker whose view of the membership is old may hold a different rank now, and would
        // save its old rank's state under its new rank's key.
        let member = try membership.member(
            worker, seenEpoch: membershipEpoch, rule: .current,
            advice: "its rank may have changed: save again with the current view (the SDK retries)")
        let (task, rank) = (member.task, member.rank)
        // The checkpoint's data position: the whole task's when this opening creates it, then each rank's own
        // shards as they stand when that rank saves.
        let creating = checkpoints.pendingCheckpoint(task: task, step: step) == nil
        let position = dataPosition(of: task, ownedBy: creating ? nil : worker)
        let moment = now()
        let opening = CheckpointCatalog.Opening(
            task: task, step: step, epoch: epoch, worker: worker, rank: rank, worldSize: member.worldSize,
            membershipEpoch: member.epoch, metrics: metrics, metadata: metadata)
        let (record, directives) = try checkpoints.open(
            opening, position: position, now: moment.monotonic, wallMs: moment.unixMillis)
        carryOut(directives)
        try await settle(task)
        if creating {
            logger.info(
                "checkpoint opened",
                metadata: ["checkpoint": "\(record.id)", "world_size": "\(record.worldSize)", "epoch": "\(epoch)"])
        }
        let remaining = (checkpoints.deadline(of: record.id) ?? moment.monotonic) - moment.monotonic
        return CheckpointGrant(
            record: record, rank: rank, location: store.location, key: record.id.partKey(rank: rank),
            deadlineUnixMs: moment.unixMillis + Int64(remaining / .milliseconds(1)))
    }

    /// A rank reports its part (`part`), or that it could not write it (`failure`). The part must be in the store
    /// with the reported size. With `wait`, returns once the checkpoint is committed or aborted.
    public func reportCheckpointPart(
        _ id: CheckpointID, worker: WorkerID, part: CheckpointRecord.Part?, failure: String?, wait: Bool
    ) async throws -> CheckpointRecord {
        let store = try checkpointStoreOrThrow()
        let directives: [CheckpointCatalog.Directive]
        if let failure {
            (_, directives) = try checkpoints.fail(id, worker: worker, reason: failure)
            logger.warning(
                "checkpoint part failed",
                metadata: ["checkpoint": "\(id)", "worker_id": "\(worker)", "error": "\(failure)"])
        } else if let part {
            let key = try checkpoints.partKey(of: worker, in: id)
            // Checked before the catalog changes: a part that is not really there can never be committed.
            let stored = try await store.size(of: key)
            guard stored == part.sizeBytes else {
                let found = stored.map { "holds \($0) bytes" } ?? "holds nothing"
                let problem = "reported \(part.sizeBytes) bytes but the store \(found) at \(key)"
                guard let aborted = try? checkpoints.fail(id, worker: worker, reason: problem) else {
                    throw CheckpointError(.failedPrecondition, "\(problem); checkpoint \(id) is no longer open")
                }
                carryOut(aborted.directives)
                try? await settle(id.task)
                throw CheckpointError(
                    .failedPrecondition,
                    "\(problem): the part is incomplete, so checkpoint \(id) is aborted; save again",
                    reason: .checkpointAborted)
            }
            (_, directives) = try checkpoints.report(id, worker: worker, part: part)
        } else {
            throw CoreError.invalid("size_bytes", "and sha256 are required unless failure is set")
        }
        carryOut(directives)
        try await settle(id.task)
        let record = checkpoints.record(id)!
        guard wait, record.status == .pending else { return record }
        guard !shuttingDown else { throw Self.shuttingDownError }
        return try await withCheckedThrowingContinuation { continuation in
            checkpointWaiters[id, default: []].append(continuation)
        }
    }

    /// A task's committed checkpoint of `step` (or its latest); with `restoreData`, the task's data ledgers are reset
    /// to the position recorded with it, once per checkpoint and membership epoch (every rank may ask). Restoring needs
    /// `worker` to be a member of `task` and `secret` (what the caller presented) to be that member's.
    ///
    /// - Returns: the record, and whether this call reset the ledgers.
    public func loadCheckpoint(
        task: TaskID, step: Int64?, restoreData: Bool, worker: WorkerID?, secret: String? = nil
    ) async throws -> (record: CheckpointRecord, dataRestored: Bool) {
        if restoreData { try await dataReady() }
        _ = try checkpointStoreOrThrow()
        if restoreData {
            guard let worker, (try? membership.member(worker))?.task == task else {
                throw CoreError(
                    .failedPrecondition,
                    "restore_data resets the data position of the whole task: it needs the worker_id of a member of "
                        + "task \(task)")
            }
            // Acting as that member: only with its secret. (Reading a manifest names a worker only to find its task.)
            try authenticate(worker, secret: secret)
        }
        // What a load returns is durable: a commit still being written could be undone by a crash.
        try await settle(task)
        guard let record = checkpoints.committed(task: task, step: step) else {
            let which = step.map { "step \($0)" } ?? "any step"
            throw CheckpointError(.notFound, "task \(task) has no committed checkpoint at \(which)")
        }
        guard restoreData else { return (record, false) }
        // A ledger being synced with a membership change off the actor is rewound once it is back.
        while let key = catalog.syncingLedgers(of: task).first { try await awaitSync(key) }
        let epoch = membership.epoch(of: task)
        guard dataRestoredFrom[task].map({ $0 != (record.id, epoch) }) ?? true else { return (record, false) }
        let position = record.position.ledgerRecords(task: task, membershipEpoch: epoch)
        carryOut(
            catalog.rewind(
                task: task, to: position, members: membership.members(of: task), membershipEpoch: epoch, now: now()))
        dataRestoredFrom[task] = (record.id, epoch)
        try await settle(task)
        logger.info(
            "data position restored from a checkpoint",
            metadata: ["checkpoint": "\(record.id)", "dataset_epochs": "\(position.count)"])
        return (record, true)
    }

    /// The task of a registered worker (for loads that name a worker instead of a task).
    public func task(of worker: WorkerID) throws -> TaskID {
        guard let task = membership.task(of: worker) else { throw Membership.unknown(worker) }
        return task
    }

    /// Every checkpoint record, for `/api/checkpoints`.
    public func checkpointRecords() -> [CheckpointRecord] { checkpoints.all }

    /// Where checkpoints are stored, if anywhere.
    public nonisolated var checkpointLocation: BlobStoreLocation? { checkpointStore?.location }

    // MARK: Directives

    /// Carries out checkpoint directives. Waiters are answered only once the record they see is durable.
    func carryOut(_ directives: [CheckpointCatalog.Directive]) {
        for directive in directives {
            switch directive {
            case .persist(let record):
                noteChange(queue.enqueue(.checkpoint(record)), of: record.id.task)
            case .commit(let record):
                effects.submit { await self.writeManifest(of: record) }
            case .settled(let record):
                effects.submit { await self.answerWaiters(record) }
                log(settled: record)
            case .deleteObjects(let id, let keys):
                effects.submit { await self.deleteObjects(of: id, keys) }
            case .forget(let id, let keys):
                effects.submit {
                    guard await self.deleteObjects(of: id, keys) else { return }
                    await self.forget(id)
                }
            }
        }
    }

    /// Deletes a retired checkpoint's objects, and what a writer that died mid-upload left under its prefix. Only once
    /// the status change that retired it is durable: a crash must not leave a committed record whose parts are gone.
    ///
    /// - Returns: whether everything was deleted.
    @discardableResult
    private func deleteObjects(of id: CheckpointID, _ keys: [ObjectKey]) async -> Bool {
        guard let store = checkpointStore else { return true }
        do {
            try await settle(id.task)
            try await store.delete(keys)
            _ = try await store.removeIncompleteWrites(under: id.prefix, startedBefore: .distantFuture)
            return true
        } catch {
            logger.warning(
                "deleting checkpoint objects failed; the next sweep (or, for a forgotten record, the next start) retries",
                metadata: ["checkpoint": "\(id)", "error": "\(error)"])
            return false
        }
    }

    /// Deletes a forgotten record, whose objects are gone.
    private func forget(_ id: CheckpointID) {
        noteChange(queue.enqueue(.checkpointForgotten(id)), of: id.task)
        checkpoints.forgotten(id)
    }

    /// Writes the manifest of a checkpoint whose parts are all in, then records the commit. Storage failures are
    /// retried until the checkpoint's deadline: a fully written checkpoint is not thrown away for a transient error.
    private func writeManifest(of record: CheckpointRecord) async {
        guard let store = checkpointStore else { return }
        var pause: Duration = .milliseconds(500)
        while true {
            do {
                // The record saying every part is in must be durable before a manifest exists next to the parts.
                try await settle(record.id.task)
                if let mismatch = try await mismatchedPart(of: record, in: store) {
                    carryOut(checkpoints.commitFailed(record.id, reason: mismatch))
                    return
                }
                let committedAt = now().unixMillis
                let location = store.location
                let manifest = CheckpointManifest(
                    record: record, committedAtMs: committedAt,
                    store: .init(uri: location.uri, endpoint: location.endpoint, region: location.region))
                try await store.put(record.id.manifestKey, bytes: manifest.json())
                carryOut(checkpoints.committed(record.id, atMs: committedAt))
                return
            } catch {
                guard let deadline = checkpoints.deadline(of: record.id), now().monotonic + pause < deadline else {
                    logger.error(
                        "writing a checkpoint manifest failed",
                        metadata: ["checkpoint": "\(record.id)", "error": "\(error)"])
                    carryOut(checkpoints.commitFailed(record.id, reason: "\(error)"))
                    return
                }
                // Shutting down: a restarted coordinator resumes the commit (every part is reported).
                guard !Task.isCancelled else { return }
                logger.warning(
                    "writing a checkpoint manifest failed; retrying",
                    metadata: ["checkpoint": "\(record.id)", "error": "\(error)", "retry_in": "\(pause)"])
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(30))
            }
        }
    }

    /// Why a reported part does not match the store, if one does not (checked again at commit time: after a restart,
    /// the parts were reported to a coordinator that is gone).
    private func mismatchedPart(of record: CheckpointRecord, in store: any BlobStore) async throws -> String? {
        for (rank, part) in record.parts.sorted(by: { $0.key < $1.key }) {
            let key = record.id.partKey(rank: rank)
            let stored = try await store.size(of: key)
            if stored != part.sizeBytes {
                return "\(record.describe(rank: rank)) reported \(part.sizeBytes) bytes but the store holds "
                    + (stored.map { "\($0) bytes" } ?? "nothing") + " at \(key)"
            }
        }
        return nil
    }

    private func answerWaiters(_ record: CheckpointRecord) async {
        do {
            try await settle(record.id.task)
        } catch {
            for waiter in checkpointWaiters.removeValue(forKey: record.id) ?? [] { waiter.resume(throwing: error) }
            return
        }
        for waiter in checkpointWaiters.removeValue(forKey: record.id) ?? [] { waiter.resume(returning: record) }
        publishCheckpointEvent(record)
    }

    private func log(settled record: CheckpointRecord) {
        metrics.recordCheckpoint(
            outcome: record.status.rawValue,
            latency: record.committedAtMs.map { .milliseconds($0 - record.createdAtMs) },
            bytes: record.status == .committed ? record.totalBytes : 0)
        switch record.status {
        case .committed:
            logger.info(
                "checkpoint committed",
                metadata: [
                    "checkpoint": "\(record.id)", "bytes": "\(record.totalBytes)",
                    "latency_ms": "\((record.committedAtMs ?? record.createdAtMs) - record.createdAtMs)",
                ])
        case .aborted:
            logger.warning(
                "checkpoint aborted",
                metadata: ["checkpoint": "\(record.id)", "reason": "\(record.abortReason ?? "")"])
        case .pending, .deleted:
            break
        }
    }

    private func checkpointStoreOrThrow() throws(CheckpointError) -> any BlobStore {
        guard let checkpointStore else {
            throw CheckpointError(
                .failedPrecondition, "this coordinator has no checkpoint store: start it with --checkpoint-store",
                reason: .noCheckpointStore)
        }
        return checkpointStore
    }

    private static func checkpointPrefix(of key: ObjectKey) -> ObjectKey? {
        let segments = key.segments
        guard segments.count >= 2 else { return nil }
        return try? ObjectKey(segments: [String(segments[0]), String(segments[1])])
    }

    // MARK: Garbage collection

    /// Deletes the objects of aborted and retired checkpoints that are still in the store: a slow writer may finish
    /// its part after the abort, and a delete may have failed. Unfinished writes under their prefixes go too. Only
    /// the tasks with such checkpoints are listed (a restart's first sweep runs while the workers come back).
    public func sweepCheckpointStore() async {
        guard let store = checkpointStore else { return }
        let tasks = Set(checkpoints.all.filter { $0.status == .aborted || $0.status == .deleted }.map(\.id.task))
        for task in tasks.sorted() {
            do {
                let keys = try await store.list(under: try ObjectKey(task.rawValue))
                var retired: Set<CheckpointID> = []
                let stale = keys.filter { key in
                    let segments = key.segments
                    // Objects of attempts this coordinator does not know are left alone: they may be another
                    // coordinator's, or the checkpoints to recover from after a lost database.
                    guard segments.count >= 2,
                        let id = try? CheckpointID(parsing: "\(segments[0])/\(segments[1])"),
                        let record = checkpoints.record(id), record.status == .aborted || record.status == .deleted
                    else { return false }
                    retired.insert(id)
                    return true
                }
                guard !stale.isEmpty else { continue }
                // Retired for good (durable) before anything goes.
                try await settle(task)
                try await store.delete(stale)
                for id in retired.sorted() {
                    _ = try await store.removeIncompleteWrites(under: id.prefix, startedBefore: .distantFuture)
                }
                logger.info("swept checkpoint objects", metadata: ["task_id": "\(task)", "objects": "\(stale.count)"])
            } catch {
                logger.warning(
                    "sweeping the checkpoint store failed", metadata: ["task_id": "\(task)", "error": "\(error)"])
            }
        }
    }

    // MARK: Data position

    /// The task's started shards (all of them, or those `owner` holds), as a checkpoint records them.
    func dataPosition(of task: TaskID, ownedBy owner: WorkerID?) -> DataPosition {
        DataPosition(startedShards: catalog.startedShards(of: task, ownedBy: owner))
    }
}

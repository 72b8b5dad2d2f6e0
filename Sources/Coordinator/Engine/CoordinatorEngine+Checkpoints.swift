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
        guard let view = membership.view(of: worker) else { throw Membership.unknown(worker) }
        guard let rank = view.rank else {
            throw CoreError(
                .failedPrecondition,
                "worker \(worker) is not a member of task \(view.taskID) (it was declared dead or left): register "
                    + "again")
        }
        let task = view.taskID
        guard membershipEpoch <= view.epoch else {
            throw CoreError.invalid(
                "membership_epoch", "must not be ahead of task \(task)'s current membership epoch \(view.epoch)",
                got: String(membershipEpoch))
        }
        // The checkpoint's data position: the whole task's when this opening creates it, then each rank's own
        // shards as they stand when that rank saves.
        let creating = checkpoints.pendingCheckpoint(task: task, step: step) == nil
        let position = dataPosition(of: task, ownedBy: creating ? nil : worker)
        let moment = now()
        let opening = CheckpointCatalog.Opening(
            task: task, step: step, epoch: epoch, worker: worker, rank: rank, worldSize: view.worldSize,
            membershipEpoch: view.epoch, metrics: metrics, metadata: metadata)
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
                if let aborted = try? checkpoints.fail(id, worker: worker, reason: problem) {
                    carryOut(aborted.directives)
                    try? await settle(id.task)
                }
                throw CheckpointError(
                    .failedPrecondition,
                    "\(problem): the part is incomplete, so checkpoint \(id) is aborted; save again")
            }
            (_, directives) = try checkpoints.report(id, worker: worker, part: part)
        } else {
            throw CoreError.invalid("size_bytes", "and sha256 are required unless failure is set")
        }
        carryOut(directives)
        try await settle(id.task)
        let record = checkpoints.record(id)!
        guard wait, record.status == .pending else { return record }
        return try await withCheckedThrowingContinuation { continuation in
            checkpointWaiters[id, default: []].append(continuation)
        }
    }

    /// A task's committed checkpoint of `step` (or its latest); with `restoreData`, the task's data ledgers are reset
    /// to the position recorded with it, once per checkpoint and membership epoch (every rank may ask).
    ///
    /// - Returns: the record, and whether this call reset the ledgers.
    public func loadCheckpoint(task: TaskID, step: Int64?, restoreData: Bool) async throws -> (
        record: CheckpointRecord, dataRestored: Bool
    ) {
        _ = try checkpointStoreOrThrow()
        guard let record = checkpoints.committed(task: task, step: step) else {
            let which = step.map { "step \($0)" } ?? "any step"
            throw CheckpointError(.notFound, "task \(task) has no committed checkpoint at \(which)")
        }
        guard restoreData else { return (record, false) }
        let epoch = membership.epoch(of: task)
        guard dataRestoredFrom[task].map({ $0 != (record.id, epoch) }) ?? true else { return (record, false) }
        var position: [LedgerKey: [ShardRecord]] = [:]
        for (key, cursors) in record.position.epochs {
            position[LedgerKey(task: task, dataset: key.dataset, epoch: key.epoch)] = cursors.map { shard, cursor in
                ShardRecord(
                    shard: shard, owner: nil, leaseEpoch: epoch, consumed: cursor.consumed,
                    state: cursor.done ? .done : .leased)
            }
        }
        persist(
            catalog.rewind(
                task: task, to: position, members: membership.members(of: task), membershipEpoch: epoch, now: now()),
            task: task)
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
                latestChange[record.id.task] = queue.enqueue(.checkpoint(record))
            case .commit(let record):
                Task { await self.writeManifest(of: record) }
            case .settled(let record):
                Task { await self.answerWaiters(record) }
                log(settled: record)
            case .deleteObjects(let keys):
                guard let store = checkpointStore, let prefix = keys.first.flatMap(Self.checkpointPrefix) else {
                    continue
                }
                let logger = self.logger
                Task {
                    do {
                        try await store.delete(keys)
                        // A writer that died mid-upload leaves a temporary file or a multipart upload behind.
                        _ = try await store.removeIncompleteWrites(under: prefix, startedBefore: .distantFuture)
                    } catch {
                        logger.warning(
                            "deleting checkpoint objects failed; the next sweep retries",
                            metadata: ["prefix": "\(prefix)", "error": "\(error)"])
                    }
                }
            }
        }
    }

    /// Writes the manifest of a checkpoint whose parts are all in, then records the commit.
    private func writeManifest(of record: CheckpointRecord) async {
        guard let store = checkpointStore else { return }
        let committedAt = now().unixMillis
        let location = store.location
        let manifest = CheckpointManifest(
            record: record, committedAtMs: committedAt,
            store: .init(uri: location.uri, endpoint: location.endpoint, region: location.region))
        do {
            try await store.put(record.id.manifestKey, bytes: manifest.json())
            carryOut(checkpoints.committed(record.id, atMs: committedAt))
        } catch {
            logger.error(
                "writing a checkpoint manifest failed", metadata: ["checkpoint": "\(record.id)", "error": "\(error)"])
            carryOut(checkpoints.commitFailed(record.id, reason: "\(error)"))
        }
    }

    private func answerWaiters(_ record: CheckpointRecord) async {
        do {
            try await settle(record.id.task)
        } catch {
            for waiter in checkpointWaiters.removeValue(forKey: record.id) ?? [] { waiter.resume(throwing: error) }
            return
        }
        for waiter in checkpointWaiters.removeValue(forKey: record.id) ?? [] { waiter.resume(returning: record) }
    }

    private func log(settled record: CheckpointRecord) {
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
                .failedPrecondition, "this coordinator has no checkpoint store: start it with --checkpoint-store")
        }
        return checkpointStore
    }

    private static func checkpointPrefix(of key: ObjectKey) -> ObjectKey? {
        let segments = key.segments
        guard segments.count >= 2 else { return nil }
        return try? ObjectKey(segments: [String(segments[0]), String(segments[1])])
    }

    // MARK: Garbage collection

    /// Deletes what no checkpoint owns any more: objects of aborted and retired checkpoints (a slow writer may finish
    /// after the abort), objects of attempts the catalog never recorded, and unfinished writes older than the
    /// checkpoint timeout (a writer that crashed mid-upload).
    func sweepCheckpointStore() async {
        guard let store = checkpointStore else { return }
        let tasks = Set(checkpoints.all.map(\.id.task))
        let cutoff = Date(timeIntervalSinceNow: -Double(checkpoints.timeout.components.seconds))
        for task in tasks.sorted() {
            do {
                let root = try ObjectKey(task.rawValue)
                let keys = try await store.list(under: root)
                let stale = keys.filter { key in
                    let segments = key.segments
                    guard segments.count >= 2,
                        let id = try? CheckpointID(parsing: "\(segments[0])/\(segments[1])")
                    else { return false }
                    guard let record = checkpoints.record(id) else { return true }
                    return record.status == .aborted || record.status == .deleted
                }
                if !stale.isEmpty {
                    try await store.delete(stale)
                    logger.info(
                        "swept checkpoint objects", metadata: ["task_id": "\(task)", "objects": "\(stale.count)"])
                }
                let removed = try await store.removeIncompleteWrites(under: root, startedBefore: cutoff)
                if removed > 0 {
                    logger.info(
                        "removed unfinished checkpoint writes",
                        metadata: ["task_id": "\(task)", "writes": "\(removed)"])
                }
            } catch {
                logger.warning(
                    "sweeping the checkpoint store failed", metadata: ["task_id": "\(task)", "error": "\(error)"])
            }
        }
    }

    // MARK: Data position

    /// The task's started shards (all of them, or those `owner` holds), as a checkpoint records them.
    func dataPosition(of task: TaskID, ownedBy owner: WorkerID?) -> DataPosition {
        var position = DataPosition()
        for (key, records) in catalog.startedShards(of: task, ownedBy: owner) {
            let epochKey = DataPosition.EpochKey(dataset: key.dataset, epoch: key.epoch)
            position.epochs[epochKey] = Dictionary(
                uniqueKeysWithValues: records.map {
                    ($0.shard, DataPosition.Cursor(consumed: $0.consumed, done: $0.state == .done))
                })
        }
        return position
    }
}

import Checkpoint
import Foundation
import RuntimeCore
import RuntimeProto
import Storage

// MARK: Requests -> validated core values

extension CheckpointRecord.Part {
    /// Validates a part report: a size >= 0, a lower-case hex sha256, a finite write time >= 0.
    init(validating request: Dtruntime_V1_ReportCheckpointPartRequest) throws(CoreError) {
        guard request.sizeBytes >= 0 else {
            throw CoreError.invalid("size_bytes", "must be >= 0", got: String(request.sizeBytes))
        }
        let hex = request.sha256.utf8
        guard hex.count == 64, hex.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw CoreError.invalid(
                "sha256", "must be 64 lower-case hex digits (or set failure instead)",
                got: Validation.quoted(request.sha256))
        }
        guard request.writeSeconds.isFinite, request.writeSeconds >= 0 else {
            throw CoreError.invalid("write_seconds", "must be a finite number >= 0", got: "\(request.writeSeconds)")
        }
        self.init(sizeBytes: request.sizeBytes, sha256: request.sha256, writeSeconds: request.writeSeconds)
    }
}

// MARK: Core values -> responses

extension Dtruntime_V1_StorageLocation {
    init(_ location: BlobStoreLocation) {
        self.init()
        uri = location.uri
        endpoint = location.endpoint
        region = location.region
    }
}

extension Dtruntime_V1_CheckpointStatus {
    init(_ status: CheckpointRecord.Status) {
        switch status {
        case .pending: self = .pending
        case .committed: self = .committed
        case .aborted: self = .aborted
        case .deleted: self = .deleted
        }
    }
}

extension Dtruntime_V1_CheckpointManifest {
    /// The manifest of a committed record, as the wire API carries it.
    init(_ record: CheckpointRecord, location: BlobStoreLocation) {
        let manifest = CheckpointManifest(
            record: record, committedAtMs: record.committedAtMs ?? 0,
            store: .init(uri: location.uri, endpoint: location.endpoint, region: location.region))
        self.init()
        checkpointID = manifest.checkpointId
        taskID = manifest.taskId
        step = manifest.step
        epoch = manifest.epoch
        worldSize = Int32(manifest.worldSize)
        parts = manifest.parts.map { part in
            .with {
                $0.rank = Int32(part.rank)
                $0.objectKey = part.objectKey
                $0.sizeBytes = part.sizeBytes
                $0.sha256 = part.sha256
            }
        }
        metrics = manifest.metrics
        metadata = manifest.metadata
        datasets = manifest.datasets.map { dataset in
            .with {
                $0.dataset = dataset.dataset
                $0.epoch = dataset.epoch
                $0.doneShardIds = dataset.doneShardIds
                $0.partial = dataset.partial.map { partial in
                    .with {
                        $0.shardID = partial.shardId
                        $0.consumed = partial.consumed
                    }
                }
            }
        }
        createdAtUnixMs = manifest.createdAtUnixMs
        committedAtUnixMs = manifest.committedAtUnixMs
        store = Dtruntime_V1_StorageLocation(location)
        manifestKey = manifest.manifestKey
    }
}

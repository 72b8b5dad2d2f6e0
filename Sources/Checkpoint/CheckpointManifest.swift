import Foundation

/// The JSON document written next to a committed checkpoint's parts (`<checkpoint id>/manifest.json`): everything
/// needed to load it without the coordinator. Field names match the wire API's `CheckpointManifest`.
public struct CheckpointManifest: Sendable, Hashable, Codable {
    /// The format's name and version.
    public static let format = "dtruntime.checkpoint-manifest.v1"

    /// One rank's part.
    public struct Part: Sendable, Hashable, Codable {
        /// The rank that wrote it.
        public var rank: Int
        /// Its key, relative to the store.
        public var objectKey: String
        /// Its size.
        public var sizeBytes: Int64
        /// Lower-case hex sha256 of its bytes.
        public var sha256: String
    }

    /// The position of one dataset epoch: finished shards and partly consumed ones.
    public struct Dataset: Sendable, Hashable, Codable {
        /// A partly consumed shard.
        public struct Partial: Sendable, Hashable, Codable {
            /// The shard.
            public var shardId: Int64
            /// Samples of its epoch order consumed.
            public var consumed: Int64
        }

        /// The dataset.
        public var dataset: String
        /// The data epoch.
        public var epoch: Int64
        /// Finished shards, ascending.
        public var doneShardIds: [Int64]
        /// Started, unfinished shards, by shard id.
        public var partial: [Partial]
    }

    /// Where the parts are.
    public struct Store: Sendable, Hashable, Codable {
        /// `file:///...` or `s3://bucket/prefix`.
        public var uri: String
        /// S3 endpoint, if any.
        public var endpoint: String
        /// S3 region, if any.
        public var region: String

        /// Creates a store description.
        public init(uri: String, endpoint: String, region: String) {
            self.uri = uri
            self.endpoint = endpoint
            self.region = region
        }
    }

    /// ``format``.
    public var format: String
    /// The checkpoint id.
    public var checkpointId: String
    /// Its task.
    public var taskId: String
    /// Its training step.
    public var step: Int64
    /// Its training epoch.
    public var epoch: Int64
    /// Ranks that wrote parts.
    public var worldSize: Int
    /// The parts, by rank.
    public var parts: [Part]
    /// Metrics (the lowest rank's win).
    public var metrics: [String: Double]
    /// User metadata.
    public var metadata: [String: String]
    /// Data position, per dataset epoch.
    public var datasets: [Dataset]
    /// When the checkpoint opened.
    public var createdAtUnixMs: Int64
    /// When it committed.
    public var committedAtUnixMs: Int64
    /// Where the parts are.
    public var store: Store
    /// This manifest's key.
    public var manifestKey: String

    /// The manifest of a record whose every part is reported.
    public init(record: CheckpointRecord, committedAtMs: Int64, store: Store) {
        format = Self.format
        checkpointId = record.id.description
        taskId = record.id.task.rawValue
        step = record.id.step
        epoch = record.epoch
        worldSize = record.worldSize
        parts = record.parts.keys.sorted().compactMap { rank in
            record.parts[rank].map {
                Part(
                    rank: rank, objectKey: record.id.partKey(rank: rank).rawValue, sizeBytes: $0.sizeBytes,
                    sha256: $0.sha256)
            }
        }
        metrics = record.metrics
        metadata = record.metadata
        datasets = record.position.epochs.keys.sorted().map { key in
            let cursors = record.position.epochs[key] ?? [:]
            return Dataset(
                dataset: key.dataset, epoch: key.epoch,
                doneShardIds: cursors.filter(\.value.done).keys.sorted(),
                partial: cursors.filter { !$0.value.done }.keys.sorted().map {
                    Dataset.Partial(shardId: $0, consumed: cursors[$0]?.consumed ?? 0)
                })
        }
        createdAtUnixMs = record.createdAtMs
        committedAtUnixMs = committedAtMs
        self.store = store
        manifestKey = record.id.manifestKey.rawValue
    }

    /// Pretty, key-sorted JSON with snake_case names.
    public func json() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }
}

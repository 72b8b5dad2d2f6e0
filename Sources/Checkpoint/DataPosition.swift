/// Where a task's data loading stood when a checkpoint was taken: per dataset epoch, each started shard's cursor
/// (samples of the shard's epoch order consumed). Shards that are not listed had not started.
///
/// Restoring a checkpoint resets the task's ledgers to this position, so model state and data resume together.
public struct DataPosition: Sendable, Hashable, Codable {
    /// One dataset epoch.
    public struct EpochKey: Sendable, Hashable, Comparable, Codable {
        /// The dataset's name.
        public var dataset: String
        /// The data epoch.
        public var epoch: Int64

        /// Creates a key.
        public init(dataset: String, epoch: Int64) {
            self.dataset = dataset
            self.epoch = epoch
        }

        public static func < (a: EpochKey, b: EpochKey) -> Bool { (a.dataset, a.epoch) < (b.dataset, b.epoch) }
    }

    /// A shard's cursor, and whether the shard is finished.
    public struct Cursor: Sendable, Hashable, Codable {
        /// Samples consumed.
        public var consumed: Int64
        /// True when every sample of the shard is consumed.
        public var done: Bool

        /// Creates a cursor.
        public init(consumed: Int64, done: Bool) {
            self.consumed = consumed
            self.done = done
        }
    }

    /// Started shards of each dataset epoch, by shard id.
    public var epochs: [EpochKey: [Int64: Cursor]]

    /// Creates a position.
    public init(epochs: [EpochKey: [Int64: Cursor]] = [:]) {
        self.epochs = epochs
    }

    /// This position with `newer`'s cursors laid over it: a rank's own shards as they stood when that rank saved.
    public func overlaid(with newer: DataPosition) -> DataPosition {
        var merged = self
        for (key, cursors) in newer.epochs {
            merged.epochs[key, default: [:]].merge(cursors) { _, new in new }
        }
        return merged
    }
}

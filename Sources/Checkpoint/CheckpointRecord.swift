/// Everything the coordinator knows about one checkpoint attempt; persisted whole (as JSON) on every change.
public struct CheckpointRecord: Sendable, Hashable, Codable {
    /// Where the checkpoint is in its life.
    public enum Status: String, Sendable, Hashable, Codable, CaseIterable {
        /// Open: waiting for parts. Invisible to loads.
        case pending
        /// Whole and loadable.
        case committed
        /// Given up (a part failed, a participant left, the deadline passed); its objects are deleted.
        case aborted
        /// Removed by retention; its objects are deleted.
        case deleted
    }

    /// A rank's reported part.
    public struct Part: Sendable, Hashable, Codable {
        /// Bytes written.
        public var sizeBytes: Int64
        /// Lower-case hex sha256 of those bytes.
        public var sha256: String
        /// How long the write took (0 when unknown).
        public var writeSeconds: Double

        /// Creates a part.
        public init(sizeBytes: Int64, sha256: String, writeSeconds: Double) {
            self.sizeBytes = sizeBytes
            self.sha256 = sha256
            self.writeSeconds = writeSeconds
        }
    }

    /// The attempt's identity.
    public var id: CheckpointID
    /// The training epoch the ranks gave.
    public var epoch: Int64
    /// How many ranks must report a part: the task's world size when the checkpoint opened.
    public var worldSize: Int
    /// The task's membership epoch when the checkpoint opened.
    public var membershipEpoch: UInt64
    /// Current status.
    public var status: Status
    /// Unix milliseconds of the opening.
    public var createdAtMs: Int64
    /// Unix milliseconds of the commit.
    public var committedAtMs: Int64?
    /// Why it was aborted.
    public var abortReason: String?
    /// The ranks that opened (joined) the checkpoint, and who they were.
    public var opened: [Int: String]
    /// The parts reported so far, by rank.
    public var parts: [Int: Part]
    /// Each rank's metrics.
    public var rankMetrics: [Int: [String: Double]]
    /// User metadata (ranks' maps merged, the lowest rank winning).
    public var metadata: [String: String]
    /// The data position recorded with the checkpoint.
    public var position: DataPosition

    /// Creates a pending record.
    public init(
        id: CheckpointID, epoch: Int64, worldSize: Int, membershipEpoch: UInt64, createdAtMs: Int64,
        position: DataPosition = DataPosition()
    ) {
        self.id = id
        self.epoch = epoch
        self.worldSize = worldSize
        self.membershipEpoch = membershipEpoch
        self.status = .pending
        self.createdAtMs = createdAtMs
        self.opened = [:]
        self.parts = [:]
        self.rankMetrics = [:]
        self.metadata = [:]
        self.position = position
    }

    /// The ranks' metrics merged, the lowest rank winning.
    public var metrics: [String: Double] {
        var merged: [String: Double] = [:]
        for rank in rankMetrics.keys.sorted(by: >) {
            merged.merge(rankMetrics[rank] ?? [:]) { _, lower in lower }
        }
        return merged
    }

    /// Ranks that have not reported a part, ascending.
    public var missingRanks: [Int] { (0..<worldSize).filter { parts[$0] == nil } }

    /// Bytes of every reported part (saturating: sizes come from clients).
    public var totalBytes: Int64 {
        parts.values.reduce(0) { total, part in
            let (sum, overflow) = total.addingReportingOverflow(part.sizeBytes)
            return overflow ? .max : sum
        }
    }

    /// Total bytes over the slowest part's write time: how fast the ranks wrote, together (nil when unknown).
    public var writeBytesPerSecond: Double? {
        let slowest = parts.values.map(\.writeSeconds).max() ?? 0
        return parts.count == worldSize && slowest > 0 ? Double(totalBytes) / slowest : nil
    }

    /// Every object key of this checkpoint: the manifest first (so a half-done delete never leaves a manifest whose
    /// parts are gone), then each rank's part.
    public var objectKeys: [ObjectKey] { [id.manifestKey] + (0..<worldSize).map(id.partKey(rank:)) }

    /// `rank 2 (worker w2)`, for messages.
    public func describe(rank: Int) -> String {
        opened[rank].map { "rank \(rank) (worker \($0))" } ?? "rank \(rank)"
    }
}

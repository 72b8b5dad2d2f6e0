/// Which committed checkpoints of a task to keep: the last `keepLast` by step, plus the best `keepBest` by a metric.
/// The latest committed checkpoint is always kept, whatever the policy says, so a job can always resume.
public struct RetentionPolicy: Sendable, Hashable {
    /// Whether a lower or a higher metric is better.
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        /// Lower is better (a loss).
        case min
        /// Higher is better (an accuracy).
        case max
    }

    /// How many of the newest checkpoints to keep; 0 keeps every checkpoint.
    public var keepLast: Int
    /// How many of the best checkpoints (by `metric`) to keep besides; 0 keeps none for being best.
    public var keepBest: Int
    /// The metric that ranks checkpoints for `keepBest` (e.g. "loss"); checkpoints without it never count as best.
    public var metric: String
    /// Whether lower or higher `metric` is better.
    public var mode: Mode

    /// Keeps the last 5, none for being best.
    public static let `default` = RetentionPolicy(keepLast: 5, keepBest: 0, metric: "", mode: .min)

    /// Creates a policy.
    public init(keepLast: Int, keepBest: Int, metric: String, mode: Mode) {
        self.keepLast = keepLast
        self.keepBest = keepBest
        self.metric = metric
        self.mode = mode
    }

    /// A committed checkpoint as retention sees it.
    public struct Candidate: Sendable, Hashable {
        /// The checkpoint.
        public var id: CheckpointID
        /// Its metrics.
        public var metrics: [String: Double]

        /// Creates a candidate.
        public init(id: CheckpointID, metrics: [String: Double]) {
            self.id = id
            self.metrics = metrics
        }
    }

    /// The checkpoints of one task to delete, given all its committed ones in commit order (oldest first); in id
    /// order. "Last" means last committed, which is not always the highest step (a job may roll back).
    public func expired(_ committed: [Candidate]) -> [CheckpointID] {
        guard keepLast > 0 else { return [] }
        let newestFirst = Array(committed.reversed())
        var keep = Set(newestFirst.prefix(keepLast).map(\.id))
        if keepBest > 0, !metric.isEmpty {
            let ranked = newestFirst.compactMap { candidate in
                candidate.metrics[metric].flatMap { $0.isNaN ? nil : (candidate.id, $0) }
            }
            // Ties go to the newer checkpoint (the sort is stable and the input is newest first).
            let best = ranked.sorted { mode == .min ? $0.1 < $1.1 : $0.1 > $1.1 }.prefix(keepBest)
            keep.formUnion(best.map(\.0))
        }
        return newestFirst.map(\.id).filter { !keep.contains($0) }.sorted()
    }
}

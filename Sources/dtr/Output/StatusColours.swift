/// The colour of a status word in a table (workers, tasks, checkpoints), on terminals: green for good, yellow for
/// in between, red for failures, dim for what is over.
enum StatusColours {
    /// The colour of `status`; nil (plain) for statuses this `dtr` does not know.
    static func colour(of status: String) -> Colour? {
        switch status {
        case "healthy", "running", "committed", "completed": .green
        case "suspect", "stopping", "pending": .yellow
        case "dead", "failed", "aborted": .red
        case "left", "stopped", "deleted": .dim
        default: nil
        }
    }

    /// Counts by status as `3 healthy, 1 dead`: the statuses in `order` first, then any others the coordinator
    /// reports (sorted), leaving out zeros; `none` when every count is zero.
    static func counts(_ counts: [String: Int], order: [String], style: Style) -> String {
        let known = order.filter { counts[$0] != nil }
        let others = counts.keys.filter { !order.contains($0) }.sorted()
        let parts = (known + others).compactMap { status -> String? in
            guard let count = counts[status], count > 0 else { return nil }
            return "\(count) " + style.paint(status, colour(of: status))
        }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }
}

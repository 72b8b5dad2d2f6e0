extension Membership {
    /// One known worker as the HTTP API shows it (what ``workers(now:)`` lists), or nil for an unknown worker: the
    /// dashboard's live events carry single workers, and listing every worker for one would cost O(n log n).
    public func worker(_ id: WorkerID, now: Moment) -> WorkerSnapshot? {
        guard let entry = entries[id] else { return nil }
        return WorkerSnapshot(
            record: entry.record, health: entry.health, rank: view(of: entry).rank,
            lastHeartbeatAge: now.monotonic - entry.lastSeen, step: entry.step, metrics: entry.metrics)
    }
}

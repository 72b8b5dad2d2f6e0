import DataShard

/// The shard records of one write batch, gathered per ledger so that each ledger gets one compact row per batch
/// however many reports the batch holds.
struct LedgerRecordBatch {
    private var records: [LedgerKey: [ShardRecord]] = [:]
    private var order: [LedgerKey] = []

    /// Adds records of `key`'s ledger.
    mutating func add(_ more: [ShardRecord], to key: LedgerKey) {
        if records[key] == nil { order.append(key) }
        records[key, default: []] += more
    }

    /// The records gathered for `key` (the latest per shard), and forgets them.
    mutating func take(_ key: LedgerKey) -> [ShardRecord] {
        guard let gathered = records.removeValue(forKey: key) else { return [] }
        order.removeAll { $0 == key }
        return Self.latestPerShard(gathered)
    }

    /// Everything gathered, per ledger in the order ledgers first appeared, and forgets it.
    mutating func takeAll() -> [(LedgerKey, [ShardRecord])] {
        let all = order.map { ($0, Self.latestPerShard(records[$0] ?? [])) }
        records = [:]
        order = []
        return all
    }

    private static func latestPerShard(_ records: [ShardRecord]) -> [ShardRecord] {
        var latest: [Int64: ShardRecord] = [:]
        for record in records { latest[record.shard] = record }
        return Array(latest.values)
    }
}

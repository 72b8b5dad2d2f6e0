import DataShard
import RuntimeCore

extension DatasetCatalog {
    /// What readers see of `key`'s ledger: each member's assignment, the started shards, the summaries. Two catalogs
    /// with the same view serve the same answers (a restored one and the one that wrote it, say).
    func readerView(_ key: LedgerKey, members: [WorkerID], epoch: UInt64, now: Moment) throws -> String {
        var copy = self
        var text = ""
        for member in members {
            let leases = try copy.assignment(
                key: key, worker: member, members: members, membershipEpoch: epoch, now: now
            ).leases
            text += "\(member): \(leases.map { "\($0.shard)@\($0.consumed)" })\n"
        }
        return text + "\(startedShards(of: key.task))\n\(summaries(of: key.dataset))"
    }
}

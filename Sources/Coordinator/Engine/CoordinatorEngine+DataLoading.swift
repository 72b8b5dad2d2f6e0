import DataShard
import RuntimeCore

/// Loading the data plane after a restart off the engine's actor: reading a ledger of 2^24 shards and rebuilding it
/// takes longer than a restart may keep heartbeats, registrations and other tasks waiting. Until it is installed the
/// catalog is empty (a membership change has nothing to move yet; installing reconciles the ledgers with the
/// membership of that moment), and every call that reads or changes datasets or ledgers waits for it
/// (``dataReady()``).
extension CoordinatorEngine {
    /// Longest a call waits for the data plane to load before it is told to retry (the loading goes on): below the
    /// SDK's default call timeout (10 s).
    static let dataLoadWait: Duration = .seconds(8)

    /// Returns once the data plane is loaded, or at most ``dataLoadWait``.
    ///
    /// - Throws: `unavailable` (retry after 2 s) while it is still loading after that; `unavailable` with the
    ///   reason when it could not be loaded.
    func dataReady() async throws {
        let started = ContinuousClock.now
        while dataLoading != nil {
            guard ContinuousClock.now - started < Self.dataLoadWait else {
                throw CoreError(
                    .unavailable,
                    "the coordinator is still loading its datasets and ledgers after a restart: retry in a few "
                        + "seconds", details: ErrorDetails(retryAfter: .seconds(2)))
            }
            // Polled: waiting on the loading task itself could not be given up when the bound passes. Every 50 ms:
            // thousands of workers may be waiting, and each check is a job on this actor.
            try await Task.sleep(for: .milliseconds(50))
        }
        if let dataLoadFailure { throw dataLoadFailure }
    }

    /// Installs the loaded data plane (once; later calls return at once), then reconciles its ledgers with each
    /// task's membership as it is now.
    func finishLoadingData() async {
        guard let loading = dataLoading else { return }
        let result = await loading.result
        guard dataLoading != nil else { return }
        dataLoading = nil
        switch result {
        case .success(let (loaded, directives)):
            catalog = loaded
            carryOut(directives)
            for task in catalog.tasks.sorted() {
                carryOut(
                    catalog.onMembershipChange(
                        task: task, members: membership.members(of: task), membershipEpoch: membership.epoch(of: task)))
            }
            logger.info(
                "datasets and ledgers loaded",
                metadata: [
                    "datasets": "\(catalog.registered.count)", "ledgers": "\(catalog.ledgerCount)",
                    "took": "\(ContinuousClock.now - createdAt)",
                ])
        case .failure(let error):
            dataLoadFailure = CoreError(
                .unavailable,
                "the coordinator could not load its datasets and ledgers from the state database (\(error)); "
                    + "data calls fail until it is restarted with a readable database: restore it from a backup "
                    + "(docs/DEPLOYMENT.md)")
            logger.critical("loading datasets and ledgers failed", metadata: ["error": "\(error)"])
        }
    }
}

import Coordinator
import Foundation
import RuntimeCore
import RuntimeProto
import Swarm
import SwiftProtobuf

extension SwarmBench {
    /// `rendezvous`: N workers register into one task at once, each then opening its session as the SDK's `Worker`
    /// does; measured from the first registration sent to the moment every worker holds its rank at the task's final
    /// membership epoch (N joins: epoch N), against the floor of the same number of no-op calls and streams. With
    /// `--dataset-shards`, the first worker registers alone and begins an epoch of a dataset of that many shards, and
    /// the others then join a running epoch (each join moves a share of the shards to the joiner): measured from the
    /// second registration, and until the last worker's first page of shards.
    ///
    /// The floor's calls and streams (2 N at once, from this one address) fit the coordinator's default per-client
    /// burst, twice its rate, up to N = 5,000 (the default rate); the N registrations after them draw on what refilled
    /// meanwhile (at 4,000 none was refused). Beyond that the coordinator it starts runs without the limit, as the
    /// departure's does, and the report says so: a real cluster's N hosts each have a budget.
    func rendezvous() async throws -> SwarmReport {
        let count = workers ?? 4000
        let unlimited = Double(count) > CoordinatorConfig().grpcRateLimit
        let start: ((String) async throws -> BenchCoordinator)? =
            unlimited ? { try await coordinatorWithoutRateLimit(dataDir: $0) } : nil
        return try await withCoordinator(start: start) { connections, coordinator, _ in
            var report = try await measureRendezvous(count, connections, coordinator)
            if unlimited { report.notes += noRateLimitNote(count) }
            return report
        }
    }

    private func measureRendezvous(_ count: Int, _ connections: SwarmConnections, _ coordinator: BenchCoordinator)
        async throws -> SwarmReport
    {
        var report = SwarmReport(scenario: "rendezvous", command: commandLine)
        let task = "rendezvous-\(UInt32.random(in: 0...UInt32.max))"
        let sample: [UInt8] = try
            (Dtruntime_V1_RegisterWorkerRequest.with {
                $0.workerID = "rdv-3999"
                $0.host = "127.0.0.1"
                $0.port = 20_000
                $0.taskID = task
                $0.incarnation = "0123456789abcdef"
                $0.taskMaxWorldSize = Int32(count)
            }.serializedBytes())
        let floor = try await callFloor(connections, count: count, message: sample, report: &report)

        // When each worker first held a rank at the final epoch.
        let settled = Shared<[String: ContinuousClock.Instant]>([:])
        let finalEpoch = UInt64(count)
        let recorder = SwarmRecorder { view in
            guard view.epoch == finalEpoch, view.rank >= 0, view.worldSize == Int32(count) else { return }
            settled.withLock { if $0[view.worker] == nil { $0[view.worker] = view.at } }
        }
        let workers = makeWorkers(
            count, prefix: "rdv", task: { _ in task }, maxWorldSize: Int32(count), recorder: recorder)
        let sessions = SwarmSessions([], connections: connections)
        let clock = ContinuousClock()
        // Each worker heartbeats once a second from its registration on, as the SDK's do.
        let pacing = Task {
            await HeartbeatPacer.run(workers, interval: .seconds(1), until: clock.now + .seconds(86_400))
        }
        defer { pacing.cancel() }
        // The running epoch the others join, begun by the first worker alone.
        var ledgerCreated: Duration?
        if datasetShards > 0 {
            try await workers[0].register(connections)
            sessions.open(workers[0])
            ledgerCreated = try await beginEpoch(of: "rdv-data", shards: datasetShards, by: workers[0], connections)
        }
        let joining = datasetShards > 0 ? Array(workers.dropFirst()) : workers
        let start = clock.now
        let lastRegistered = Shared(start)
        await withTaskGroup(of: Void.self) { group in
            for worker in joining {
                group.addTask {
                    do {
                        try await worker.register(connections)
                        let now = clock.now
                        lastRegistered.withLock { $0 = max($0, now) }
                        sessions.open(worker)
                    } catch {
                        recorder.error(errorKey("RegisterWorker", error), message: "\(worker.id): \(error)")
                    }
                }
            }
        }
        let everyone = await waitUntil(timeout: .seconds(120)) { settled.withLock { $0.count } == count }
        let reached = settled.withLock { $0 }
        // A worker holds its rank once its registration call returned: the last one's view is recorded as the reply
        // is decoded, microseconds before the call's return is timed, so the end is at least the last return.
        let registeredAt = lastRegistered.withLock { $0 }
        let end = max(reached.values.max() ?? clock.now, registeredAt)
        let elapsed = end - start
        let registered = registeredAt - start
        // The last joiner's first page: once the ledger took every join (it waits while the ledger is synced).
        var lastPage: (took: Duration, shards: Int)?
        if datasetShards > 0, let last = workers.last {
            let page = try await firstAssignment(of: last, dataset: "rdv-data", connections)
            lastPage = (clock.now - end, page.shards.count)
        }
        // Let a few heartbeats go by: nobody may be suspected or told to rejoin.
        try await Task.sleep(for: .seconds(2))
        await sessions.stop()

        checkCorrectness(
            &report, recorder: recorder, live: workers, coordinator: coordinator, connections: connections)
        if !everyone { report.problem("only \(reached.count) of \(count) workers reached epoch \(finalEpoch)") }
        let ranks = Set(workers.map(\.view.rank))
        let ranked = ranks == Set((0..<Int32(count)))
        if !ranked { report.problem("the ranks are not exactly 0..<\(count) (\(ranks.count) distinct)") }
        let seconds = elapsed.seconds
        report.rows = [
            ["workers registering into one task at once", Figure.count(count), "", ""],
            ["last registration answered", Figure.seconds(registered.seconds), "", ""],
            [
                "\(datasetShards > 0 ? "second" : "first") registration → every worker holds its rank at epoch "
                    + "\(finalEpoch)", Figure.seconds(seconds),
                floor.map { "floor: \(Figure.count(count)) no-op calls + streams: \(Figure.seconds($0.seconds))" }
                    ?? "no floor (--target)",
                (floor.map { "\(Figure.ratio(seconds / max($0.seconds, 1e-9))); " } ?? "")
                    + (count <= Self.goalWorkers
                        ? "goal ≤ 1 s \(Figure.met(seconds <= 1))"
                        : "the goal is for \(Figure.count(Self.goalWorkers))"),
            ],
            ["every worker ranked 0..<\(count), no false deaths", ranked ? "yes" : "no", "", ""],
        ]
        if let ledgerCreated, let lastPage {
            report.rows.insert(
                [
                    "a running epoch: shards, ledger created by the first worker (alone)", Figure.count(datasetShards),
                    Figure.seconds(ledgerCreated.seconds), "",
                ], at: 1)
            report.rows.append([
                "every worker holds its rank → the last one's first page of shards (the ledger took every join)",
                Figure.seconds(lastPage.took.seconds), "its shards: \(lastPage.shards)", "",
            ])
            report.figures["dataset_shards"] = datasetShards
            report.figures["ledger_seconds"] = ledgerCreated.seconds
            report.figures["last_page_seconds"] = lastPage.took.seconds
            report.figures["last_page_shards"] = lastPage.shards
            if lastPage.shards == 0 { report.problem("the last worker to join was given no shards") }
        }
        report.figures["workers"] = count
        report.figures["rendezvous_seconds"] = seconds
        report.figures["registered_seconds"] = registered.seconds
        if let floor { report.figures["floor_seconds"] = floor.seconds }
        report.figures["ranked"] = ranked
        report.figures["settled"] = reached.count
        if count <= Self.goalWorkers { report.figures["goal_met"] = seconds <= 1 }
        return report
    }

    /// The rendezvous goal (≤ 1 s) is for this many workers.
    static let goalWorkers = 4000
}

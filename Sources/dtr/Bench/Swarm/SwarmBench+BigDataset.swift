import Foundation
import GRPCCore
import RuntimeProto
import Swarm

extension SwarmBench {
    /// `big-dataset`: N workers of one task heartbeat at 1 Hz while another task works through a dataset of
    /// 2^`--log2-shards` shards: its first worker creates the epoch's ledger (its first `GetShardAssignment`), a second
    /// worker joins (a share of the shards moves to it), then leaves again (they move back). Measured: the other
    /// workers' heartbeat round trips over an idle window and over the window of those operations (issue #13: p99
    /// during ≤ 2× idle), and each operation's time as its caller saw it.
    func bigDataset() async throws -> SwarmReport {
        let count = workers ?? 1000
        return try await withCoordinator { connections, coordinator, _ in
            try await measureBigDataset(count, connections, coordinator)
        }
    }

    private func measureBigDataset(
        _ count: Int, _ connections: SwarmConnections, _ coordinator: BenchCoordinator
    ) async throws -> SwarmReport {
        var report = SwarmReport(scenario: "big-dataset", command: commandLine)
        let shards = Int64(1) << log2Shards
        let others = SwarmRecorder()
        let bigRecorder = SwarmRecorder()
        let workers = makeWorkers(count, prefix: "hb", task: { _ in "heartbeating" }, recorder: others)
        let big = makeWorkers(2, prefix: "big", task: { _ in "big-dataset" }, recorder: bigRecorder)
        let clock = ContinuousClock()
        let pacing = Task {
            await HeartbeatPacer.run(workers + big, interval: .seconds(1), until: clock.now + .seconds(86_400))
        }
        defer { pacing.cancel() }
        let sessions = SwarmSessions([], connections: connections)
        _ = await registerAll(workers + [big[0]], connections, opening: sessions, recorder: others)
        if !(await waitUntil(timeout: .seconds(120)) { (workers + [big[0]]).allSatisfy { $0.acknowledged > 0 } }) {
            report.problem("not every session had a heartbeat acknowledged")
        }

        // The idle window: nothing but heartbeats.
        try await Task.sleep(for: .seconds(3))
        _ = others.takeRoundTrips()
        try await Task.sleep(for: durationValue)
        let idle = Percentiles(nanoseconds: others.takeRoundTrips())

        // The busy window: create, join, leave; then one more second of heartbeats.
        let stub = connections.stub(big[0].connection)
        let spec = Dtruntime_V1_DatasetSpec.with {
            $0.name = "big"
            $0.totalSamples = shards
            $0.shardSize = 1
            $0.shuffle = true
            $0.seed = 7
        }
        let busyStart = clock.now
        _ = try await stub.registerDataset(.with { $0.spec = spec }, metadata: connections.metadata)
        func assignment(_ worker: SimulatedWorker) async throws -> Dtruntime_V1_GetShardAssignmentResponse {
            try await firstAssignment(of: worker, dataset: "big", connections)
        }
        // The others' round trips answered during each operation (and, for the last, the second after it).
        var phases: [[Int64]] = []
        let created = try await timed { try await assignment(big[0]) }
        phases.append(others.takeRoundTrips())
        let joined = try await timed {
            try await big[1].register(connections)
            sessions.open(big[1])
            return try await assignment(big[1])
        }
        phases.append(others.takeRoundTrips())
        let left = try await timed {
            try await big[1].deregister(connections, reason: "big-dataset bench: leaving")
            return try await assignment(big[0])
        }
        let operations = clock.now - busyStart
        try await Task.sleep(for: .seconds(1))
        phases.append(others.takeRoundTrips())
        let busy = Percentiles(nanoseconds: phases.flatMap { $0 })
        let phaseMax = phases.map { Percentiles(nanoseconds: $0).maxMilliseconds }
        // The heartbeating task's workers and the big task's first, alone again.
        let ranking = rankingProblem(workers + [big[0]])
        pacing.cancel()
        await sessions.stop()
        checkCorrectness(
            &report, recorder: others, live: workers, coordinator: coordinator, connections: connections)
        if let ranking { report.problem(ranking) }
        if bigRecorder.errorCount > 0 {
            report.problem("the big task's calls failed: \(bigRecorder.firstErrors.joined(separator: "; "))")
        }
        if created.reply.totalShards != shards {
            report.problem("the ledger holds \(created.reply.totalShards) shards, not \(shards)")
        }
        if joined.reply.shards.isEmpty { report.problem("the joining worker was given no shards") }

        let ratio = busy.milliseconds(0.99) / max(idle.milliseconds(0.99), 0.001)
        report.rows = [
            [
                "other workers heartbeating at 1 Hz (another task)", Figure.count(count), "",
                "dataset: 2^\(log2Shards) = \(Figure.count(Int(shards))) shards",
            ],
            [
                "create the epoch's ledger (first GetShardAssignment) / join (RegisterWorker + its assignment) / "
                    + "leave (DeregisterWorker + the other's assignment)",
                "\(Figure.seconds(created.time.seconds)) / \(Figure.seconds(joined.time.seconds)) / "
                    + "\(Figure.seconds(left.time.seconds))",
                "", "",
            ],
            [
                "others' heartbeat round trip p50 / p99 / max while idle (\(Figure.seconds(durationValue.seconds)))",
                "\(Figure.ms(idle.milliseconds(0.5))) / \(Figure.ms(idle.milliseconds(0.99))) / "
                    + Figure.ms(idle.maxMilliseconds),
                "\(Figure.count(idle.count)) heartbeats", "",
            ],
            [
                "others' heartbeat round trip p50 / p99 / max during them (\(Figure.seconds(operations.seconds)) + 1 s)",
                "\(Figure.ms(busy.milliseconds(0.5))) / \(Figure.ms(busy.milliseconds(0.99))) / "
                    + Figure.ms(busy.maxMilliseconds),
                "\(Figure.count(busy.count)) heartbeats",
                "p99 \(Figure.ratio(ratio)) idle (≤ 2×) \(Figure.met(ratio <= 2))",
            ],
            [
                "… the longest of them answered during creation / join / leave (+ 1 s)",
                phaseMax.map { Figure.ms($0) }.joined(separator: " / "), "", "",
            ],
            [
                "false deaths / false suspicions (other workers)",
                "\(workers.filter(\.sawRejoin).count) / \(workers.filter(\.sawSuspect).count)", "", "0 / 0",
            ],
        ]
        if let stats = coordinator.stats {
            report.rows.append(["coordinator RSS after", Figure.bytes(Double(stats.residentBytes)), "", ""])
            report.figures["coordinator_rss_bytes"] = stats.residentBytes
        }
        report.figures["workers"] = count
        report.figures["shards"] = shards
        report.figures["create_seconds"] = created.time.seconds
        report.figures["join_seconds"] = joined.time.seconds
        report.figures["leave_seconds"] = left.time.seconds
        report.figures["idle_p50_ms"] = idle.milliseconds(0.5)
        report.figures["idle_p99_ms"] = idle.milliseconds(0.99)
        report.figures["busy_p50_ms"] = busy.milliseconds(0.5)
        report.figures["busy_p99_ms"] = busy.milliseconds(0.99)
        report.figures["busy_max_ms"] = busy.maxMilliseconds
        report.figures["create_max_ms"] = phaseMax[0]
        report.figures["join_max_ms"] = phaseMax[1]
        report.figures["leave_max_ms"] = phaseMax[2]
        report.figures["p99_ratio"] = ratio
        report.figures["goal_p99_met"] = ratio <= 2
        report.figures["joined_shards"] = joined.reply.shards.count
        return report
    }

    /// Runs `body`, returning its result and how long it took.
    private func timed<Reply>(_ body: () async throws -> Reply) async throws -> (reply: Reply, time: Duration) {
        let start = ContinuousClock.now
        let reply = try await body()
        return (reply, ContinuousClock.now - start)
    }
}

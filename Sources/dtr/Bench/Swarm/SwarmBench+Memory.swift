import Coordinator
import Foundation
import RuntimeCore
import Swarm

extension SwarmBench {
    /// `memory`: registers N workers (tasks of `--task-size`), each heartbeating once with a step and three metrics,
    /// and reads the coordinator's resident memory before and at every tenth. Long failure-detector timeouts keep
    /// them members without heartbeats (each worker's memory, not its stream's: the heartbeat scenario reports the
    /// RSS with sessions open).
    func memory() async throws -> SwarmReport {
        let count = workers ?? 100_000
        let start = { (directory: String) in
            try await BenchCoordinator.spawn(
                dataDir: directory,
                arguments: ["--heartbeat-interval", "60s", "--suspect-after", "300s", "--dead-after", "600s"])
        }
        return try await withCoordinator(start: start) { connections, coordinator, directory in
            try await measureMemory(count, connections, coordinator, directory: directory)
        }
    }

    private func measureMemory(
        _ count: Int, _ connections: SwarmConnections, _ coordinator: BenchCoordinator, directory: String
    ) async throws -> SwarmReport {
        var report = SwarmReport(scenario: "memory", command: commandLine)
        let recorder = SwarmRecorder()
        let size = taskSize
        let workers = makeWorkers(count, prefix: "mem", task: { "mem-\($0 / size)" }, recorder: recorder)
        try await Task.sleep(for: .seconds(1))
        guard let empty = coordinator.stats else { throw BenchFailure("cannot read the coordinator's /proc entry") }
        var points: [(workers: Int, rss: Int)] = [(0, empty.residentBytes)]
        let tenth = max(1, count / 10)
        var done = 0
        let started = ContinuousClock.now
        while done < count {
            let batch = Array(workers[done..<min(count, done + tenth)])
            let failed = await registerAll(batch, connections, recorder: recorder)
            // Each worker reports a step and metrics once, as its first heartbeat would.
            await withTaskGroup(of: Void.self) { group in
                var next = 0
                func add() {
                    guard next < batch.count else { return }
                    let worker = batch[next]
                    next += 1
                    if failed.contains(where: { $0 === worker }) { return add() }
                    let seed = next
                    group.addTask {
                        worker.progress(step: 100, metrics: TrainingCurve(seed: seed).metrics(at: 100))
                        do {
                            try await worker.heartbeatOnce(connections)
                        } catch {
                            recorder.error(errorKey("Heartbeat", error), message: "\(worker.id): \(error)")
                        }
                    }
                }
                for _ in 0..<512 { add() }
                while await group.next() != nil { add() }
            }
            done += batch.count
            try await Task.sleep(for: .milliseconds(500))
            if let stats = coordinator.stats { points.append((done, stats.residentBytes)) }
        }
        let elapsed = ContinuousClock.now - started
        checkCorrectness(
            &report, recorder: recorder, live: workers, coordinator: coordinator, connections: connections)
        if let ranking = rankingProblem(workers, settled: false) { report.problem(ranking) }

        let last = points.last!
        let perWorker = Double(last.rss - points[0].rss) / Double(max(1, last.workers))
        let first = points.count > 2 ? points[1] : points[0]
        let slope = Double(last.rss - first.rss) / Double(max(1, last.workers - first.workers))
        let database =
            (try? FileManager.default.attributesOfItem(atPath: directory + "/coordinator.sqlite"))?[.size]
            as? Int ?? 0
        report.rows = [
            [
                "workers registered (tasks of \(size)), one heartbeat each", Figure.count(count), "",
                Figure.seconds(elapsed.seconds),
            ],
            [
                "coordinator RSS with no worker → with all", Figure.bytes(Double(last.rss)),
                Figure.bytes(Double(points[0].rss)), "",
            ],
            [
                "RSS growth per registered worker", Figure.bytes(perWorker), "",
                "≤ 2 KiB \(Figure.met(perWorker <= 2048))",
            ],
            [
                "… between \(Figure.count(first.workers)) and \(Figure.count(last.workers)) workers (slope)",
                Figure.bytes(slope), "", "",
            ],
            ["state database on disk", Figure.bytes(Double(database)), "", ""],
        ]
        report.notes.append(
            "RSS by workers: "
                + points.map { "\(Figure.count($0.workers)): \(Figure.bytes(Double($0.rss)))" }
                .joined(separator: ", "))
        report.figures["workers"] = count
        report.figures["rss_empty_bytes"] = points[0].rss
        report.figures["rss_full_bytes"] = last.rss
        report.figures["bytes_per_worker"] = perWorker
        report.figures["bytes_per_worker_slope"] = slope
        report.figures["goal_met"] = perWorker <= 2048
        return report
    }
}

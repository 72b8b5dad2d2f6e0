import Coordinator
import Foundation
import RuntimeCore
import Swarm

extension SwarmBench {
    /// `failure-detection`: N workers in tasks of `--task-size` heartbeat at 1 Hz; `--deaths` of them, one a second
    /// in different tasks, stop heartbeating with their streams left open (a hung process). For each: its last
    /// heartbeat sent → its `died` event on `/api/events`, and → the push reaching the last survivor of its task.
    /// Goal: within one detector tick of the dead timeout.
    func failureDetection() async throws -> SwarmReport {
        let count = workers ?? 10_000
        return try await withCoordinator { connections, coordinator, _ in
            try await measureFailureDetection(count, connections, coordinator)
        }
    }

    private func measureFailureDetection(
        _ count: Int, _ connections: SwarmConnections, _ coordinator: BenchCoordinator
    ) async throws -> SwarmReport {
        var report = SwarmReport(scenario: "failure-detection", command: commandLine)
        guard let http = coordinator.http else { throw BenchFailure("failure-detection needs the HTTP API") }
        let size = min(taskSize, count)
        let tasks = (count + size - 1) / size
        // When each worker first saw its task shrink (one death per task): by a push, or by the acknowledgement of a
        // heartbeat when that went first (the coordinator folds a pending push into it).
        let heard = Shared<[String: ContinuousClock.Instant]>([:])
        let recorder = SwarmRecorder { view in
            guard view.rank >= 0, view.worldSize > 0, view.worldSize < Int32(size) else { return }
            heard.withLock { if $0[view.worker] == nil { $0[view.worker] = view.at } }
        }
        let workers = makeWorkers(count, prefix: "fd", task: { "fd-\($0 / size)" }, recorder: recorder)
        // The detector's settings, as the coordinator tells every registering worker.
        let settings = try await workers[0].register(connections)
        let deadAfter = Double(settings.deadAfterMs) / 1000
        let tick = min(Double(settings.heartbeatIntervalMs) / 4000, 0.25)
        let clock = ContinuousClock()
        let sessions = SwarmSessions([workers[0]], connections: connections)
        let early = Task {
            await HeartbeatPacer.run(workers, interval: .seconds(1), until: clock.now + .seconds(86_400))
        }
        _ = await registerAll(Array(workers.dropFirst()), connections, opening: sessions, recorder: recorder)
        early.cancel()
        let pacing = Task {
            await HeartbeatPacer.run(workers, interval: .seconds(1), until: clock.now + .seconds(3600))
        }
        defer { pacing.cancel() }
        let watcher = EventWatcher(baseURL: http)
        defer { watcher.stop() }
        let ready = await waitUntil(timeout: .seconds(120)) {
            watcher.isConnected && workers.allSatisfy { $0.acknowledged > 0 }
        }
        if !ready { report.problem("not every worker was heartbeating (or /api/events did not connect) in 120 s") }
        try await Task.sleep(for: .seconds(3))

        // Victims: one a second, each in another task (the first worker of tasks 0, 1, 2...).
        let victims = (0..<min(deaths, tasks)).map { workers[($0 % tasks) * size + ($0 / tasks) % size] }
        for victim in victims {
            victim.hang()
            try await Task.sleep(for: .seconds(1))
        }
        _ = await waitUntil(timeout: .seconds(deadAfter + 5)) {
            let deaths = watcher.deaths
            return victims.allSatisfy { deaths[$0.id] != nil }
        }
        try await Task.sleep(for: .seconds(1))
        // The survivors, each task's dead worker gone, hold their tasks' new ranks.
        let live = workers.filter { worker in !victims.contains { $0 === worker } }
        let ranking = rankingProblem(live)
        pacing.cancel()
        await sessions.stop()

        var toDead: [Int64] = []
        var toPush: [Int64] = []
        let deaths = watcher.deaths
        let firstHeard = heard.value
        for victim in victims {
            guard let last = victim.lastSent, let index = workers.firstIndex(where: { $0 === victim }) else { continue }
            if let died = deaths[victim.id] { toDead.append(Self.nanoseconds(died - last)) }
            let task = index / size
            let survivors = workers[(task * size)..<min(count, (task + 1) * size)].filter { $0 !== victim }
            let times = survivors.compactMap { firstHeard[$0.id] }
            if times.count == survivors.count, let latest = times.max() {
                toPush.append(Self.nanoseconds(latest - last))
            } else {
                report.problem("the death of \(victim.id) reached \(times.count) of \(survivors.count) survivors")
            }
        }
        checkCorrectness(
            &report, recorder: recorder, live: live, coordinator: coordinator, connections: connections)
        if let ranking { report.problem(ranking) }
        if toDead.count < victims.count {
            report.problem("\(victims.count - toDead.count) of \(victims.count) deaths were never announced")
        }
        let dead = Percentiles(nanoseconds: toDead)
        let push = Percentiles(nanoseconds: toPush)
        let bound = (deadAfter + tick) * 1000
        let met = dead.maxMilliseconds <= bound && push.maxMilliseconds <= bound && !toDead.isEmpty
        report.rows = [
            ["workers heartbeating at 1 Hz (tasks of \(size))", Figure.count(count), "", ""],
            ["workers that stop heartbeating (stream left open)", "\(victims.count)", "", ""],
            [
                "last heartbeat → DEAD (`died` on /api/events) median / max",
                "\(Figure.seconds(dead.milliseconds(0.5) / 1000)) / \(Figure.seconds(dead.maxMilliseconds / 1000))",
                "dead timeout \(Figure.seconds(deadAfter)), tick \(Figure.seconds(tick))",
                "≤ \(Figure.seconds(bound / 1000)) \(Figure.met(dead.maxMilliseconds <= bound))",
            ],
            [
                "last heartbeat → the last survivor holds the new view, median / max",
                "\(Figure.seconds(push.milliseconds(0.5) / 1000)) / \(Figure.seconds(push.maxMilliseconds / 1000))",
                "", "≤ \(Figure.seconds(bound / 1000)) \(Figure.met(push.maxMilliseconds <= bound))",
            ],
            [
                "false deaths / suspicions among the survivors",
                "\(live.filter(\.sawRejoin).count) / \(live.filter(\.sawSuspect).count)", "", "0 / 0",
            ],
        ]
        report.figures["workers"] = count
        report.figures["victims"] = victims.count
        report.figures["dead_median_seconds"] = dead.milliseconds(0.5) / 1000
        report.figures["dead_max_seconds"] = dead.maxMilliseconds / 1000
        report.figures["push_median_seconds"] = push.milliseconds(0.5) / 1000
        report.figures["push_max_seconds"] = push.maxMilliseconds / 1000
        report.figures["goal_met"] = met
        return report
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

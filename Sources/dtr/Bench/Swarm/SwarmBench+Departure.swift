import Coordinator
import Foundation
import GRPCCore
import RuntimeCore
import RuntimeProto
import Swarm
import SwiftProtobuf

extension SwarmBench {
    /// `departure`: the end of a job. N workers of one task heartbeat at 1 Hz on their sessions; then each leaves as
    /// the SDK's `Worker.close()` does, its session closed and then `DeregisterWorker` called, ``leavingAtOnce`` at a
    /// time, while the others go on heartbeating. Measured from the first session closed to the last deregistration
    /// answered, against the floor of as many no-op calls and streams (all at once); the coordinator may suspect
    /// nobody meanwhile (the leavers are silent well under the suspect timeout), nor declare anybody dead, and every
    /// worker must show as left in `/api/workers` afterwards. With `--dataset-shards`, the task reads a dataset whose
    /// epoch is unfinished when the job ends (a job stopped mid-epoch), so that each leave also moves shards; and one
    /// worker stays until the others have left, asking for its shards at most every 100 ms meanwhile, as a member of a
    /// task scaled down would (its calls wait while the ledger is synced off the coordinator's actor).
    ///
    /// A session is closed gracefully (its requests ended, the coordinator's end of the stream awaited), where the
    /// SDK's `close()` cancels its call: thousands of streams reset at once break the swarm's shared connections
    /// (``endGracefully(_:grace:)``), which the SDK's processes, each with a connection of its own, do not share.
    ///
    /// The coordinator it starts has no per-client rate limit: the swarm is one client standing for N hosts, whose
    /// calls at a job's end (N deregistrations in a few seconds, and the floor's N calls at once) a real cluster makes
    /// from N addresses, each with a budget of its own.
    func departure() async throws -> SwarmReport {
        let count = workers ?? 10_000
        return try await withCoordinator(start: coordinatorWithoutRateLimit) { connections, coordinator, _ in
            var report = try await measureDeparture(count, connections, coordinator)
            report.notes += noRateLimitNote(count)
            return report
        }
    }

    /// How many workers leave at once.
    static let leavingAtOnce = 512

    private func measureDeparture(_ count: Int, _ connections: SwarmConnections, _ coordinator: BenchCoordinator)
        async throws -> SwarmReport
    {
        var report = SwarmReport(scenario: "departure", command: commandLine)
        let reason = "departure bench: the job is done"
        let sample: [UInt8] = try
            (Dtruntime_V1_DeregisterWorkerRequest.with {
                $0.workerID = "job-9999"
                $0.reason = reason
            }.serializedBytes())
        let floor = try await callFloor(connections, count: count, message: sample, report: &report)

        let recorder = SwarmRecorder()
        let workers = makeWorkers(count, prefix: "job", task: { _ in "departure" }, recorder: recorder)
        let clock = ContinuousClock()
        // Every worker heartbeats once a second from its registration on, as the SDK's do.
        let pacing = Task {
            await HeartbeatPacer.run(workers, interval: .seconds(1), until: clock.now + .seconds(86_400))
        }
        defer { pacing.cancel() }
        let sessions = SwarmSessions([], connections: connections)
        let started = clock.now
        let unregistered = await registerAll(workers, connections, opening: sessions, recorder: recorder)
        let registered = clock.now - started
        if !unregistered.isEmpty { report.problem("\(unregistered.count) workers could not register") }
        let failedIDs = Set(unregistered.map(\.id))
        let members = workers.filter { !failedIDs.contains($0.id) }
        if !(await waitUntil(timeout: .seconds(120)) { workers.allSatisfy { $0.acknowledged > 0 } }) {
            report.problem("\(workers.filter { $0.acknowledged == 0 }.count) sessions had no heartbeat acknowledged")
        }

        // The task's dataset, its epoch begun (one worker's first page creates the ledger over every member), so that
        // each leave moves the leaver's shards to the others.
        var ledgerCreated: Duration?
        if datasetShards > 0, let first = members.first {
            ledgerCreated = try await beginEpoch(of: "departure-data", shards: datasetShards, by: first, connections)
        }

        // Training at 1 Hz: a warm-up, then the window the departure's round trips are compared with.
        try await Task.sleep(for: .seconds(3))
        _ = recorder.takeRoundTrips()
        try await Task.sleep(for: .seconds(5))
        let training = Percentiles(nanoseconds: recorder.takeRoundTrips())
        let suspicionsBefore = coordinator.logLines(containing: "worker suspected")
        let deathsBefore = coordinator.logLines(containing: "worker declared dead")

        // The job ends (with a dataset, the last worker stays and asks for its shards until the others left).
        let syncsBefore = coordinator.logLines(containing: Self.syncedLine)
        let statsBefore = coordinator.stats
        let asker = datasetShards > 0 ? members.last : nil
        let leftAll = Shared(false)
        let asking = asker.map { askForShards($0, dataset: "departure-data", until: leftAll, connections) }
        let leaving = clock.now
        var stayed = await leaveAll(
            asker == nil ? members : Array(members.dropLast()), connections, closing: sessions,
            concurrency: Self.leavingAtOnce, reason: reason, recorder: recorder)
        let departure = clock.now - leaving
        let statsAfter = coordinator.stats
        let leavingTrips = Percentiles(nanoseconds: recorder.takeRoundTrips())
        leftAll.withLock { $0 = true }
        let asked = await asking?.value
        // The syncs the others' leaves took (before the one that stayed leaves too).
        let syncs = coordinator.logLines(containing: Self.syncedLine).map { $0 - (syncsBefore ?? 0) }
        if let asker {
            stayed += await leaveAll(
                [asker], connections, closing: sessions, concurrency: 1, reason: reason, recorder: recorder)
        }
        pacing.cancel()
        await pacing.value
        await sessions.stop()
        // Every suspicion counts: a leaver is silent from its session's close to its deregistration, well under the
        // suspect timeout (2 s). (A worker sees its own suspicion only if a view reaches it meanwhile: an acknowledged
        // heartbeat clears it first.)
        let suspicions = coordinator.logLines(containing: "worker suspected").map { $0 - (suspicionsBefore ?? 0) }
        let deaths = coordinator.logLines(containing: "worker declared dead").map { $0 - (deathsBefore ?? 0) }

        checkCorrectness(
            &report, recorder: recorder, live: workers, coordinator: coordinator, connections: connections)
        if !stayed.isEmpty { report.problem("\(stayed.count) workers could not deregister") }
        if let deaths, deaths > 0 { report.problem("the coordinator declared \(deaths) workers dead as they left") }
        if let suspicions, suspicions > 0 {
            report.problem("the coordinator logged \(suspicions) suspicions while the workers left")
        }
        if let suspicionsBefore, suspicionsBefore > 0 {
            report.problem("the coordinator suspected \(suspicionsBefore) workers before the job ended")
        }
        if suspicions == nil {
            report.notes.append(
                "The coordinator's log is not readable here: its suspicions and deaths are not counted.")
        }
        // What the coordinator says now, whichever coordinator it is: everyone left, nobody died, nobody holds a rank.
        if let http = coordinator.http {
            let standing = try await standings(http, task: "departure")
            report.figures["left"] = standing.left
            if standing.left != members.count || standing.ranked > 0 || standing.total != members.count {
                report.problem(
                    "/api/workers after the departure: \(standing.left) of \(members.count) workers left, "
                        + "\(standing.ranked) hold a rank, \(standing.total) listed")
            }
        } else {
            report.notes.append("No HTTP API (--target without --target-http): /api/workers was not checked.")
        }

        let seconds = departure.seconds
        let trips = { (p: Percentiles) in
            "\(Figure.ms(p.milliseconds(0.5))) / \(Figure.ms(p.milliseconds(0.99))) / \(Figure.ms(p.maxMilliseconds))"
        }
        let leavers = asker == nil ? count : count - 1
        report.rows = [
            [
                "workers registered (one task), heartbeating at 1 Hz", Figure.count(count), "",
                Figure.seconds(registered.seconds),
            ],
            [
                "the task's dataset: shards of an unfinished epoch (each leave moves the leaver's to the others)",
                datasetShards > 0 ? Figure.count(datasetShards) : "none",
                ledgerCreated.map { "ledger created in \(Figure.seconds($0.seconds))" } ?? "", "",
            ],
            [
                "\(asker == nil ? "every worker" : "every worker but one") closes its session, then deregisters "
                    + "(\(Self.leavingAtOnce) at a time): first closed → last answered",
                Figure.seconds(seconds),
                floor.map {
                    "floor: \(Figure.count(count)) no-op calls + streams, all at once: \(Figure.seconds($0.seconds))"
                } ?? "no floor (--target)",
                floor.map { Figure.ratio(seconds / max($0.seconds, 1e-9)) } ?? "",
            ],
            [
                "heartbeat round trip p50 / p99 / max of the workers still there, while the others leave",
                trips(leavingTrips), "while training: \(trips(training))", "",
            ],
            [
                "workers suspected while heartbeating / told to rejoin",
                "\(workers.filter(\.sawSuspect).count) / \(workers.filter(\.sawRejoin).count)",
                suspicions.map { "the coordinator's log while they left: \($0) suspicions, \(deaths ?? 0) deaths" }
                    ?? "", "0 / 0; none logged",
            ],
        ]
        if let asked {
            let answered = Percentiles(nanoseconds: asked.trips)
            report.rows.append([
                "the worker that stays asks for its shards (at most every 100 ms) meanwhile: calls answered, round trip "
                    + "p50 / p99 / max; refused UNAVAILABLE (the ledger synced longer than the coordinator waits)",
                "\(answered.count), \(trips(answered)); \(asked.unavailable)",
                syncs.map { "ledger syncs meanwhile: \($0)" } ?? "", "",
            ])
            if answered.count == 0 { report.problem("the worker that stayed had none of its calls answered") }
            for failure in asked.failures { report.problem("the worker that stayed: \(failure)") }
            report.figures["asked_answered"] = answered.count
            report.figures["asked_p50_ms"] = answered.milliseconds(0.5)
            report.figures["asked_max_ms"] = answered.maxMilliseconds
            report.figures["asked_unavailable"] = asked.unavailable
            report.figures["ledger_syncs"] = syncs
        }
        if let cost = MessageCost(from: statsBefore, to: statsAfter, messages: leavers), let statsBefore, let statsAfter
        {
            let cpu = (statsAfter.cpuSeconds - statsBefore.cpuSeconds) / max(seconds, 1e-9)
            report.rows.append([
                "coordinator CPU while they leave (of one core) / per departure",
                "\(String(format: "%.0f %%", cpu * 100)) / \(Figure.microseconds(cost.cpu.seconds))",
                "per departure: all of the coordinator's CPU meanwhile (the others' heartbeats included) ÷ \(leavers)",
                coordinator.isSeparateProcess ? "" : "(this process: swarm included)",
            ])
            report.figures["coordinator_cpu_fraction"] = cpu
            report.figures["coordinator_cpu_per_departure_us"] = cost.cpu.seconds * 1e6
        }
        report.figures["workers"] = count
        report.figures["dataset_shards"] = datasetShards
        if let ledgerCreated { report.figures["ledger_seconds"] = ledgerCreated.seconds }
        report.figures["registration_seconds"] = registered.seconds
        report.figures["departure_seconds"] = seconds
        if let floor {
            report.figures["floor_seconds"] = floor.seconds
            report.figures["departure_ratio"] = seconds / max(floor.seconds, 1e-9)
        }
        report.figures["training_p99_ms"] = training.milliseconds(0.99)
        report.figures["leaving_p50_ms"] = leavingTrips.milliseconds(0.5)
        report.figures["leaving_p99_ms"] = leavingTrips.milliseconds(0.99)
        report.figures["leaving_round_trips"] = leavingTrips.count
        report.figures["departure_suspicions"] = suspicions
        report.figures["departure_deaths"] = deaths
        report.figures["deregistered"] = members.count - stayed.count
        return report
    }

    /// What the coordinator says when a call waited for a ledger being synced longer than it waits (UNAVAILABLE).
    static let syncingRefusal = "is being brought up to date with its task's members"

    /// What the coordinator logs when it checks in a ledger synced off its actor.
    static let syncedLine = "dataset epoch ledger synced with its task's members"

    /// `worker` asks for its first page of `dataset`'s shards at most every 100 ms (at once again after a slower
    /// answer) until `done` holds, at least once and never cutting a call short: each answered call's round trip, how
    /// many the coordinator refused as UNAVAILABLE because the ledger was being synced, and any other failure (a
    /// transport's UNAVAILABLE included).
    private func askForShards(
        _ worker: SimulatedWorker, dataset: String, until done: Shared<Bool>, _ connections: SwarmConnections
    ) -> Task<(trips: [Int64], unavailable: Int, failures: [String]), Never> {
        Task {
            var trips: [Int64] = []
            var unavailable = 0
            var failures: [String] = []
            let clock = ContinuousClock()
            repeat {
                let sent = clock.now
                do {
                    _ = try await firstPage(of: worker, dataset: dataset, shards: 10, connections)
                    trips.append(Int64((clock.now - sent).seconds * 1e9))
                } catch let error as RPCError
                    where error.code == .unavailable && error.message.contains(Self.syncingRefusal)
                {
                    unavailable += 1
                } catch {
                    failures.append("GetShardAssignment: \(error)")
                    break
                }
                try? await Task.sleep(until: sent + .milliseconds(100), clock: clock)
            } while !done.value
            return (trips, unavailable, failures)
        }
    }

    /// How the workers of `task` stand in `GET /api/workers`: how many are listed, how many left, how many hold a rank.
    private func standings(_ http: String, task: String) async throws -> (total: Int, left: Int, ranked: Int) {
        let settings = APISettings(baseURL: http, token: nil, tokenSource: nil, caFile: nil, timeout: .seconds(30))
        let response = try await APIClient.with(settings) { try await $0.get("/api/workers", query: [("task", task)]) }
        let workers = response.json["workers"].array
        return (
            workers.count, workers.filter { $0["status"].string == "left" }.count,
            workers.filter { !$0["rank"].isNull }.count
        )
    }
}

import Checkpoint
import Coordinator
import DataShard
import Foundation
import Logging
import RuntimeCore
import RuntimeProto
import ServiceLifecycle
import Storage
import Swarm
import Synchronization

extension SwarmBench {
    /// `recovery`: a data directory holding N workers, a dataset epoch of `--ledger-entries` committed shards and
    /// `--checkpoints` committed checkpoints; a coordinator serving it to a heartbeating swarm is killed with SIGKILL
    /// and started again. Measured: from the new process's start to its ready line (listening), to `/api/health`
    /// answering and to an RPC answered (both asked by a ``RecoveryProbe`` process); when the swarm noticed, tried and
    /// had its connections up again (``Reconnection``); to the first and to every worker heartbeating again; the
    /// probe's round trips before the swarm's first connection was up, and from then until every worker was back next
    /// to a floor of the gRPC stack's own (no-op streams opened at once); and no false deaths in the dead timeout
    /// after.
    func recovery() async throws -> SwarmReport {
        let count = max(workers ?? 10_000, 8)
        return try await withDataDirectory { directory in
            var report = SwarmReport(scenario: "recovery", command: commandLine)
            let seeded = try await seed(directory, workers: count)
            report.rows.append([
                "state written through the engine (in this process)",
                "\(Figure.count(count)) workers, \(Figure.count(ledgerEntries)) ledger entries, "
                    + "\(Figure.count(checkpoints)) checkpoints",
                "", Figure.seconds(seeded.time.seconds),
            ])
            // The no-op service: the floor of the sessions coming back is measured on the restarted coordinator.
            let arguments = ["--checkpoint-keep-last", "0", "--bench-noop-service"]
            let first = try await BenchCoordinator.spawn(dataDir: directory, arguments: arguments)
            let startedAt = ContinuousClock.now
            do {
                let measured = try await withConnections(first.grpc) { connections in
                    try await measureRecovery(
                        count, connections, first, directory: directory, arguments: arguments, report: report,
                        secrets: seeded.secrets)
                }
                report = measured
            } catch {
                first.kill9()
                throw error
            }
            report.figures["first_start_seconds"] = (ContinuousClock.now - startedAt).seconds
            return report
        }
    }

    private func measureRecovery(
        _ count: Int, _ connections: SwarmConnections, _ first: BenchCoordinator, directory: String,
        arguments: [String], report: SwarmReport, secrets: [String: String]
    ) async throws -> SwarmReport {
        var report = report
        let recorder = SwarmRecorder()
        let workers = recoveryWorkers(count, recorder: recorder)
        for worker in workers { worker.adopt(secret: secrets[worker.id] ?? "") }
        // The restored members heartbeat on their sessions, as running workers would.
        let sessions = SwarmSessions(workers, connections: connections)
        let clock = ContinuousClock()
        let pacing = Task {
            await HeartbeatPacer.run(workers, interval: .seconds(1), until: clock.now + .seconds(3600))
        }
        defer { pacing.cancel() }
        let heartbeating = await waitUntil(timeout: .seconds(60)) { workers.allSatisfy { $0.acknowledged > 0 } }
        if !heartbeating { report.problem("not every restored worker was heartbeating before the kill") }
        try await Task.sleep(for: .seconds(3))
        // The sessions open at the kill: a worker is back once a later one had a heartbeat acknowledged.
        let before = workers.map(\.session.number)

        // kill -9, then the same command on the same ports. The readiness probe, a process of its own, runs first: it
        // asks for health until the coordinator answers, then sends RPCs.
        let killedNs = monotonicNanoseconds()
        first.kill9()
        let restartArguments =
            arguments + ["--grpc-port", String(first.grpc.port), "--http-port", String(first.http.map(Self.port) ?? 0)]
        let probe = try await RecoveryProbe.Running(
            grpc: first.grpc, http: first.http ?? "", worker: workers[0], directory: directory)
        let second: BenchCoordinator
        do {
            second = try await BenchCoordinator.spawn(dataDir: directory, arguments: restartArguments)
        } catch {
            _ = try? await probe.finish()
            throw error
        }
        let startedNs = second.startedAt ?? killedNs
        // When the child's ready line was read (both servers listen).
        let listeningNs = second.readyAt ?? monotonicNanoseconds()
        var firstBackNs: Int64?
        let back = await waitUntil(timeout: .seconds(30), every: .milliseconds(5)) {
            let returned = zip(workers, before).count { worker, killed in
                let session = worker.session
                return session.number > killed && session.acknowledged > 0
            }
            if returned > 0, firstBackNs == nil { firstBackNs = monotonicNanoseconds() }
            return returned == count
        }
        let backNs = monotonicNanoseconds()
        let events: RecoveryProbe.Events
        do {
            events = try await probe.finish(waitingForCallsSentBy: backNs)
        } catch {
            let said = second.errorLines().suffix(3).joined(separator: "\n")
            second.kill9()
            throw BenchFailure("\(error); the restarted coordinator's log errors: \(said.isEmpty ? "none" : said)")
        }
        let seconds = { (instant: Int64) in Double(instant - startedNs) / 1e9 }
        let listeningSeconds = seconds(listeningNs)
        let healthSeconds = seconds(events.health ?? startedNs)
        guard let firstAnswer = events.answered.min(by: { $0.answered < $1.answered }) else {
            let codes = Set(events.failed.map(\.code)).sorted().joined(separator: ", ")
            let said = second.errorLines().suffix(3).joined(separator: "\n")
            second.kill9()
            throw BenchFailure(
                "the recovery probe's RPCs were never answered (\(events.failed.count) failed: "
                    + "\(codes.isEmpty ? "none" : codes)); the restarted coordinator's log errors: "
                    + (said.isEmpty ? "none" : said))
        }
        let rpcSeconds = seconds(firstAnswer.answered)
        let unfinished = events.unfinished(sentBy: backNs)
        let failedAfter = events.failed.filter { $0.sent > firstAnswer.sent }
        let reconnection = Reconnection(
            connections.connectionTimes, breaks: sessions.breakTimes, killed: killedNs, listening: listeningNs)
        // The probe's calls (each was over before it stopped) from listening on, in two parts: those answered before
        // the swarm's first connection was up again (the coordinator alone), and those in flight at some time while
        // the sessions came back (from then until every worker was back: what the floor's bursts compare with).
        let returnStartNs = reconnection.firstUpAt ?? firstBackNs ?? backNs
        let earlyCalls = events.answered.filter { $0.answered >= listeningNs && $0.answered < returnStartNs }
        let early = Percentiles(nanoseconds: earlyCalls.map { $0.answered - $0.sent })
        let duringCalls = events.answered(inFlightDuring: [(returnStartNs, backNs)])
        let during = Percentiles(nanoseconds: duringCalls.map { $0.answered - $0.sent })
        let slowest = duringCalls.max { $0.answered - $0.sent < $1.answered - $1.sent }
        let everyoneBack = Double(backNs - killedNs) / 1e9
        let everyoneBackAfterStart = seconds(backNs)
        // A whole dead timeout (and then some) after the restart: nobody may be declared dead or suspected.
        try await Task.sleep(for: .seconds(7))
        let ranking = rankingProblem(workers)
        pacing.cancel()
        await sessions.stop()
        checkCorrectness(&report, recorder: recorder, live: workers, coordinator: second)
        if let ranking { report.problem(ranking) }
        report.figures["session_breaks"] = recorder.counted("session_breaks")
        if !back { report.problem("not every worker was heartbeating again within 30 s of the kill") }
        let stats = second.stats
        var floor: SessionsFloor?
        do {
            floor = try await sessionsFloor(count, second, sample: workers[count - 1], directory: directory)
        } catch {
            report.problem("the sessions' floor could not be measured: \(error)")
        }
        await second.stop()
        let sessionsBack = Double(backNs - listeningNs) / 1e9
        let firstSessionBack = firstBackNs.map { Double($0 - listeningNs) / 1e9 }
        let returnSeconds = Double(backNs - returnStartNs) / 1e9
        // The connection up → the first session back: the first answers to thousands of streams opening at once.
        let firstAnswerSeconds: Double? =
            if let back = firstSessionBack, let up = reconnection.firstUp { back - up } else { nil }
        let floorBursts =
            floor.map {
                "\($0.probeBursts == 1 ? "a burst" : "\(Figure.count($0.probeBursts)) bursts") of \(Figure.count(count))"
            } ?? ""

        let ready = max(healthSeconds, rpcSeconds)
        report.rows += [
            ["restart → listening (the `dtr ready` line)", Figure.seconds(listeningSeconds), "", ""],
            ["restart → `GET /api/health` answers", Figure.seconds(healthSeconds), "", ""],
            [
                "restart → an RPC answered (`Heartbeat` of a restored worker, from a process of its own)",
                Figure.seconds(rpcSeconds), "", "serving ≤ 1 s \(Figure.met(ready <= 1))",
            ],
            [
                "kill → the swarm's first session broken / its first connection attempt (kill → listening: "
                    + "\(Figure.seconds(Double(listeningNs - killedNs) / 1e9)); sessions broken before that attempt: "
                    + "\(Figure.count(reconnection.breaksBeforeFirstAttempt)), before the first connection up: "
                    + "\(Figure.count(reconnection.breaksBeforeFirstUp)))",
                "\(reconnection.firstBreak.map { Figure.seconds($0) } ?? "none") / "
                    + (reconnection.firstAttempt.map { Figure.seconds($0) } ?? "none"),
                "", "",
            ],
            [
                "listening → the swarm's first / every connection up again (\(reconnection.attempts) attempts since "
                    + "the kill, \(reconnection.attemptsBeforeListening) before listening; \(reconnection.ups) made for "
                    + "\(connections.count), \(reconnection.madeAgain) of them again; the clients back off 100 ms × 1.6 "
                    + "up to 1 s)",
                "\(reconnection.firstUp.map { Figure.seconds($0) } ?? "none") / "
                    + (reconnection.allUp.map { Figure.seconds($0) } ?? "none"),
                reconnection.lastAttemptBeforeListening.map {
                    "the last attempt before listening: \(Figure.seconds($0)) before it"
                } ?? "",
                "",
            ],
            [
                "the first connection up → the first worker's session back (its heartbeat acknowledged, as the swarm "
                    + "saw it; polled every 5 ms; listening → it: \(firstSessionBack.map { Figure.seconds($0) } ?? "none"))",
                firstAnswerSeconds.map { Figure.seconds($0) } ?? "none",
                // No floor and no ratio: a burst's first answer depends on how many streams the client has queued when
                // the first goes out (2 ms in one run, a quarter second in others).
                floor.map {
                    "for reference, not a floor: \(Figure.count(count)) no-op streams opened at once, the soonest first "
                        + "answer of \(Figure.count($0.bursts)) bursts: \(Figure.seconds($0.firstAnswer.seconds))"
                } ?? "",
                "",
            ],
            [
                "its RPCs (one sent every 10 ms, each on its own) answered before the swarm's first connection was up "
                    + "(listening → it): how many, round trip p50 / p99 / max, over 100 ms",
                Self.describe(early), "", "",
            ],
            [
                "its RPCs in flight while the sessions came back (the first connection up → every worker back): "
                    + "how many, round trip p50 / p99 / max, over 100 ms",
                Self.describe(during),
                floor.map {
                    "floor: the probe's no-op calls in flight during \(floorBursts) no-op streams opened at once: "
                        + Self.describe($0.rpc)
                } ?? "",
                "",
            ],
            [
                "kill → every worker's heartbeat acknowledged again (restart → it)",
                "\(Figure.seconds(everyoneBack)) (\(Figure.seconds(everyoneBackAfterStart)))", "", "",
            ],
            [
                "listening → every worker's session back (reconnection included)",
                Figure.seconds(sessionsBack),
                floor.map {
                    "floor: \(Figure.count(count)) no-op streams opened at once, one message there and back each "
                        + "(the fastest of \(Figure.count($0.bursts)) bursts): "
                        + Figure.seconds($0.sessions.seconds)
                } ?? "",
                floor.map { Figure.ratio(sessionsBack / max($0.sessions.seconds, 1e-9)) } ?? "",
            ],
            [
                "the first connection up → every worker's session back", Figure.seconds(returnSeconds),
                floor.map { "the same floor: \(Figure.seconds($0.sessions.seconds))" } ?? "",
                floor.map { Figure.ratio(returnSeconds / max($0.sessions.seconds, 1e-9)) } ?? "",
            ],
            [
                "false deaths / suspicions in the 7 s after",
                "\(workers.filter(\.sawRejoin).count) / "
                    + "\(workers.filter(\.sawSuspect).count)", "", "0 / 0",
            ],
        ]
        if let stats {
            report.rows.append(["restarted coordinator's RSS", Figure.bytes(Double(stats.residentBytes)), "", ""])
            report.figures["rss_bytes"] = stats.residentBytes
        }
        report.figures["workers"] = count
        report.figures["ledger_entries"] = ledgerEntries
        report.figures["checkpoints"] = checkpoints
        report.figures["listening_seconds"] = listeningSeconds
        report.figures["health_seconds"] = healthSeconds
        report.figures["rpc_seconds"] = rpcSeconds
        if let firstSessionBack { report.figures["first_session_back_after_listening_seconds"] = firstSessionBack }
        report.figures["connection_attempts_after_kill"] = reconnection.attempts
        report.figures["connection_attempts_before_listening"] = reconnection.attemptsBeforeListening
        report.figures["connections_up_after_kill"] = reconnection.ups
        report.figures["connections_made_again_after_kill"] = reconnection.madeAgain
        if let up = reconnection.firstUp { report.figures["first_connection_up_after_listening_seconds"] = up }
        if let up = reconnection.allUp { report.figures["all_connections_up_after_listening_seconds"] = up }
        if let first = reconnection.firstBreak { report.figures["first_session_break_after_kill_seconds"] = first }
        if let first = reconnection.firstAttempt { report.figures["first_attempt_after_kill_seconds"] = first }
        report.figures["session_breaks_before_first_attempt"] = reconnection.breaksBeforeFirstAttempt
        report.figures["session_breaks_before_connection_up"] = reconnection.breaksBeforeFirstUp
        report.figures["listening_after_kill_seconds"] = Double(listeningNs - killedNs) / 1e9
        // To line a system-wide profile up with the run (`perf record -a -k CLOCK_MONOTONIC`, then
        // bench/perf_phases.py): the kill on CLOCK_MONOTONIC, and whose process is whose.
        report.figures["kill_monotonic_seconds"] = Double(killedNs) / 1e9
        report.figures["bench_pid"] = Int(ProcessInfo.processInfo.processIdentifier)
        report.figures["probe_pid"] = Int(probe.pid)
        if let pid = second.pid { report.figures["coordinator_pid"] = Int(pid) }
        if let firstAnswerSeconds {
            report.figures["first_session_back_after_connection_up_seconds"] = firstAnswerSeconds
        }
        if let last = reconnection.lastAttemptBeforeListening {
            report.figures["last_attempt_before_listening_seconds"] = last
        }
        report.figures["return_seconds"] = returnSeconds
        report.figures["rpcs_before_connection_up"] = early.count
        if early.count > 0 {
            report.figures["rpc_before_connection_up_p50_ms"] = early.milliseconds(0.5)
            report.figures["rpc_before_connection_up_p99_ms"] = early.milliseconds(0.99)
            report.figures["rpc_before_connection_up_max_ms"] = early.maxMilliseconds
            report.figures["rpc_before_connection_up_over_100ms"] = early.count(over: 100)
        }
        report.figures["rpcs_during_return"] = during.count
        if let slowest {
            report.figures["rpc_during_return_p50_ms"] = during.milliseconds(0.5)
            report.figures["rpc_during_return_p99_ms"] = during.milliseconds(0.99)
            report.figures["rpc_during_return_max_ms"] = during.maxMilliseconds
            report.figures["rpc_during_return_over_100ms"] = during.count(over: 100)
            report.figures["rpc_during_return_slowest_sent_relative_to_connection_up_ms"] =
                Double(slowest.sent - returnStartNs) / 1e6
        }
        report.figures["probe_rpcs_failed"] = failedAfter.count
        if !failedAfter.isEmpty {
            let codes = Dictionary(grouping: failedAfter, by: \.code).map { "\($0.value.count) \($0.key)" }.sorted()
            report.problem(
                "\(failedAfter.count) of the probe's RPCs failed after the first was answered: "
                    + codes.joined(separator: ", "))
        }
        if unfinished > 0 {
            report.problem("\(unfinished) of the probe's RPCs sent before every worker was back had no answer 35 s on")
        }
        report.figures["all_heartbeating_seconds"] = everyoneBack
        report.figures["all_heartbeating_after_start_seconds"] = everyoneBackAfterStart
        report.figures["sessions_back_after_listening_seconds"] = sessionsBack
        if let floor {
            report.figures["sessions_floor_seconds"] = floor.sessions.seconds
            report.figures["sessions_floor_first_answer_seconds"] = floor.firstAnswer.seconds
            report.figures["floor_bursts"] = floor.bursts
            report.figures["rpc_floor_bursts"] = floor.probeBursts
            report.figures["rpc_floor_calls"] = floor.rpc.count
        }
        if let floor, floor.rpc.count == 0 {
            report.problem(
                "none of the floor's probe calls was in flight during a burst of no-op streams "
                    + "(\(floor.probeBursts) bursts)")
        }
        if let floor, floor.rpc.count > 0 {
            report.figures["rpc_floor_p50_ms"] = floor.rpc.milliseconds(0.5)
            report.figures["rpc_floor_p99_ms"] = floor.rpc.milliseconds(0.99)
            report.figures["rpc_floor_max_ms"] = floor.rpc.maxMilliseconds
            report.figures["rpc_floor_over_100ms"] = floor.rpc.count(over: 100)
        }
        report.figures["goal_met"] = ready <= 1
        return report
    }

    /// The floor of the sessions coming back, and of the probe's calls meanwhile.
    private struct SessionsFloor {
        /// The fastest burst of as many no-op streams as workers (its last answer).
        var sessions: Duration
        /// The soonest first answer of a burst.
        var firstAnswer: Duration
        /// How many bursts ran (the fastest counts).
        var bursts: Int
        /// The probe's no-op calls in flight during the bursts it ran through.
        var rpc: Percentiles
        /// How many bursts the probe ran through.
        var probeBursts: Int
    }

    /// The floor of `count` sessions coming back: as many no-op streams opened at once on the restarted coordinator,
    /// each carrying one message the size of a session's heartbeat there and back; the fastest burst counts (the first
    /// also opens the connections). And the floor of the probe's round trips meanwhile: a probe sending no-op calls
    /// through the bursts after the first (those in flight at some time during one), repeated (up to 20 bursts) until
    /// one of its calls was.
    private func sessionsFloor(
        _ count: Int, _ coordinator: BenchCoordinator, sample worker: SimulatedWorker, directory: String
    ) async throws -> SessionsFloor {
        let sample: [UInt8] = try
            (Dtruntime_V1_SessionRequest.with {
                $0.heartbeat = .with {
                    $0.workerID = worker.id
                    $0.membershipEpoch = 1
                    $0.step = 100
                    $0.metrics = TrainingCurve(seed: count - 1).metrics(at: 100)
                }
            }.serializedBytes())
        return try await withConnections(coordinator.grpc) { connections in
            let opening = try await EchoStreams.burst(connections, count: count, message: sample, unary: false)
            var (fastest, soonest) = (opening.lastAnswer, opening.firstAnswer)
            let probe = try await RecoveryProbe.Running(
                grpc: coordinator.grpc, http: coordinator.http ?? "", worker: worker, echo: true, directory: directory,
                name: "probe-floor")
            var bursts: [(start: Int64, end: Int64)] = []
            do {
                guard await waitUntil(timeout: .seconds(30), { !probe.events.answered.isEmpty }) else {
                    throw BenchFailure(
                        "the floor's probe had no answer from the no-op service within 30 s: "
                            + "\(probe.events.failed.first?.code ?? "no call over yet")")
                }
                repeat {
                    let start = monotonicNanoseconds()
                    let burst = try await EchoStreams.burst(connections, count: count, message: sample, unary: false)
                    fastest = min(fastest, burst.lastAnswer)
                    soonest = min(soonest, burst.firstAnswer)
                    bursts.append((start, monotonicNanoseconds()))
                    // Lets a call in flight at the burst's end be answered before it is looked for.
                    try await Task.sleep(for: .milliseconds(20))
                } while bursts.count < 20 && probe.isRunning && probe.events.answered(inFlightDuring: bursts).isEmpty
            } catch {
                _ = try? await probe.finish()
                throw error
            }
            let calls = try await probe.finish(waitingForCallsSentBy: bursts.last?.end)
                .answered(inFlightDuring: bursts)
            return SessionsFloor(
                sessions: fastest, firstAnswer: soonest, bursts: bursts.count + 1,
                rpc: Percentiles(nanoseconds: calls.map { $0.answered - $0.sent }), probeBursts: bursts.count)
        }
    }

    /// Round trips as the report shows them: how many, p50 / p99 / max, how many over 100 ms; "none" without any.
    private static func describe(_ trips: Percentiles) -> String {
        guard trips.count > 0 else { return "none" }
        return "\(Figure.count(trips.count)), \(Figure.ms(trips.milliseconds(0.5))) / "
            + "\(Figure.ms(trips.milliseconds(0.99))) / \(Figure.ms(trips.maxMilliseconds)), "
            + Figure.count(trips.count(over: 100))
    }

    /// The swarm's workers: all but four in the data task, four in the checkpoint task.
    private func recoveryWorkers(_ count: Int, recorder: SwarmRecorder) -> [SimulatedWorker] {
        makeWorkers(
            count, prefix: "rec", task: { $0 < count - 4 ? "recovery-data" : "recovery-ckpt" }, recorder: recorder)
    }

    private static func port(_ url: String) -> Int {
        BenchCoordinator.hostPort(String(url.dropFirst("http://".count)))?.port ?? 0
    }

    // MARK: Seeding

    /// Writes the scenario's state through a coordinator engine in this process (the code paths RPCs take, without
    /// the network): workers, the ledger's commits and the checkpoints. Returns how long it took, and each worker's
    /// secret (the simulated workers act as the registered ones).
    private func seed(_ directory: String, workers count: Int) async throws -> (
        time: Duration, secrets: [String: String]
    ) {
        let started = ContinuousClock.now
        var logger = Logger(label: "dtr-bench-seed")
        logger.logLevel = .error
        let config = CoordinatorConfig(
            grpcPort: 0, httpPort: 0, dataDir: directory,
            membership: try MembershipConfig(
                heartbeatInterval: .seconds(60), suspectAfter: .seconds(600), deadAfter: .seconds(1200)),
            checkpoints: CheckpointSettings(
                retention: RetentionPolicy(keepLast: 0, keepBest: 0, metric: "", mode: .min)),
            grpcRateLimit: 0)
        let runtime = try buildCoordinator(config: config, logger: logger)
        let group = ServiceGroup(services: runtime.services, logger: logger)
        let running = Task { try await group.run() }
        _ = try await runtime.waitUntilListening()
        let engine = runtime.engine
        let secrets = Mutex<[String: String]>([:])
        do {
            let ids = (0..<count).map { "rec-\($0)" }
            // Workers.
            try await forEach(ids, concurrency: 1000) { index, id in
                let task = index < count - 4 ? "recovery-data" : "recovery-ckpt"
                let secret = try await engine.register(
                    WorkerSpec(id: try WorkerID(id), taskID: try TaskID(task), host: "127.0.0.1", port: 20_000),
                    presenting: nil
                ).secret
                secrets.withLock { $0[id] = secret }
            }
            // A dataset epoch whose every shard is committed.
            let spec = try DatasetSpec(
                name: "recovery-ds", totalSamples: Int64(ledgerEntries), shardSize: 1, shuffle: true, seed: 1)
            _ = try await engine.registerDataset(spec)
            let readers = Array(ids.prefix(count - 4))
            try await forEach(readers, concurrency: 2000) { _, id in
                let worker = try WorkerID(id)
                let assignment = try await engine.shardAssignment(dataset: spec.name, worker: worker, epoch: 0)
                for lease in assignment.leases {
                    _ = try await engine.reportShardProgress(
                        dataset: spec.name, worker: worker, epoch: 0, membershipEpoch: assignment.membershipEpoch,
                        shard: lease.shard, consumed: lease.samples.upperBound - lease.samples.lowerBound)
                }
            }
            // Checkpoints of the four-worker task, each part written to the store as a worker writes it.
            let savers = try ids.suffix(4).map { try WorkerID($0) }
            let parts = CheckpointPartWriter()
            let epoch = await engine.status().tasks.first { $0.taskID.rawValue == "recovery-ckpt" }?.epoch ?? 0
            for step in 1...max(1, checkpoints) {
                try await forEach(savers.map(\.rawValue), concurrency: 4) { _, id in
                    let worker = try WorkerID(id)
                    let grant = try await engine.saveCheckpoint(
                        worker: worker, membershipEpoch: epoch, step: Int64(step), epoch: 0,
                        metrics: ["loss": 1.0 / Double(step)], metadata: [:])
                    let location = Dtruntime_V1_StorageLocation.with {
                        $0.uri = grant.location.uri
                        $0.endpoint = grant.location.endpoint
                        $0.region = grant.location.region
                    }
                    let bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: step), count: 1024)
                    let (size, sha256) = try await parts.write(bytes, key: grant.key.rawValue, location: location)
                    _ = try await engine.reportCheckpointPart(
                        grant.record.id, worker: worker,
                        part: CheckpointRecord.Part(sizeBytes: size, sha256: sha256, writeSeconds: 0), failure: nil,
                        wait: false)
                }
            }
        } catch {
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            throw error
        }
        await group.triggerGracefulShutdown()
        try await running.value
        return (ContinuousClock.now - started, secrets.withLock { $0 })
    }

    /// Runs `body` for every element, at most `concurrency` at once; the first error is thrown.
    private func forEach(
        _ items: [String], concurrency: Int, _ body: @escaping @Sendable (Int, String) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            for _ in 0..<min(concurrency, items.count) {
                let index = next
                group.addTask { try await body(index, items[index]) }
                next += 1
            }
            while try await group.next() != nil {
                guard next < items.count else { continue }
                let index = next
                group.addTask { try await body(index, items[index]) }
                next += 1
            }
        }
    }
}

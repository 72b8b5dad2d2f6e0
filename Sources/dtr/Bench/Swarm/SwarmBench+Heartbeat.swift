import Coordinator
import Foundation
import GRPCCore
import RuntimeCore
import RuntimeProto
import Swarm
import SwiftProtobuf

extension SwarmBench {
    /// `heartbeat`: N workers at 1 Hz on session streams for `--duration`, then every worker's stream at its highest
    /// rate, against the same workers' heartbeats answered by a no-op session method (its highest rate measured
    /// before the heartbeats and again after the workers left; then once more with each answer handed from a reader
    /// task to the handler, as the coordinator's session does) and the same number of streams of raw no-op messages,
    /// on the same server.
    func heartbeat() async throws -> SwarmReport {
        // Under callgrind the coordinator is 30-50 times slower.
        let count = workers ?? (callgrind == nil ? 10_000 : 200)
        return try await withCoordinator { connections, coordinator, _ in
            try await measureHeartbeats(count, connections, coordinator)
        }
    }

    private func measureHeartbeats(
        _ count: Int, _ connections: SwarmConnections, _ coordinator: BenchCoordinator
    ) async throws -> SwarmReport {
        var report = SwarmReport(scenario: "heartbeat", command: commandLine)
        let recorder = SwarmRecorder()
        let interval = Duration.seconds(1)
        let sample: [UInt8] = try
            (Dtruntime_V1_SessionRequest.with {
                $0.heartbeat = .with {
                    $0.workerID = "swarm-9999"
                    $0.membershipEpoch = UInt64(count)
                    $0.step = 12_345
                    $0.metrics = ["loss": 0.42, "accuracy": 0.9, "lr": 0.1]
                }
            }.serializedBytes())

        // The floors first, on a coordinator that holds nothing yet. A coordinator elsewhere without the benchmarks'
        // no-op service has none: its heartbeats are measured all the same, without ratios.
        let floors = try await servesNoopService(connections)
        if !floors {
            report.notes.append(
                "No floors and no ratios: the coordinator at --target does not serve the benchmarks' no-op service "
                    + "(start it with `dtr serve --bench-noop-service` for them).")
        }
        // The same streams carrying no-op messages...
        let (noopRate, noopCost) =
            floors
            ? try await EchoStreams.rate(
                connections, streams: count, message: sample, window: rateDurationValue, stats: { coordinator.stats })
            : (0, nil)
        // ...and the same client's heartbeats answered at once by a method that does nothing else.
        let floor =
            floors ? try await sessionFloor(count, connections, coordinator, interval: interval) : SessionFloor()
        let floorTrips = Percentiles(nanoseconds: floor.paced)
        if floors, let shortfall = floor.shortfall("the session floor", of: count) { report.problem(shortfall) }
        if floors, floorTrips.count < count * Int(durationValue / interval) / 2 {
            report.problem("the session floor is short: \(floorTrips.count) round trips measured at 1 Hz")
        }
        // And the floor of the round trip at 1 Hz: the same streams, each sending a no-op message once a second.
        let noop =
            floors
            ? try await EchoStreams.paced(
                connections, streams: count, message: sample, interval: interval, window: durationValue)
            : (roundTrips: [], opened: count)
        let noopTrips = Percentiles(nanoseconds: noop.roundTrips)
        if floors, noop.opened < count || noopTrips.count < count * Int(durationValue / interval) / 2 {
            report.problem(
                "the 1 Hz floor is short: \(noop.opened) of \(count) no-op streams opened, "
                    + "\(noopTrips.count) round trips measured")
        }

        let workers = makeWorkers(count, prefix: "swarm", task: { _ in "swarm-heartbeat" }, recorder: recorder)
        let clientLag = ClientLag()
        // Every registered worker heartbeats once a second from the start, as the SDK's do: the pacer asks them all,
        // and a worker whose session is not open yet has nothing to send.
        let clock = ContinuousClock()
        var pacing = Task { await HeartbeatPacer.run(workers, interval: interval, until: clock.now + .seconds(86_400)) }
        defer { pacing.cancel() }
        let started = clock.now
        let sessions = SwarmSessions([], connections: connections)
        _ = await registerAll(workers, connections, opening: sessions, recorder: recorder)
        let registered = clock.now - started
        let clientLagRegistering = clientLag.takeWorst()
        let allOpen = await waitUntil(timeout: .seconds(120)) { workers.allSatisfy { $0.acknowledged > 0 } }
        if !allOpen {
            report.problem("\(workers.filter { $0.acknowledged == 0 }.count) sessions had no heartbeat acknowledged")
        }
        let opened = clock.now - started
        for (index, worker) in workers.enumerated() {
            worker.progress(step: 1, metrics: TrainingCurve(seed: index).metrics(at: 1))
        }

        // 1 Hz: a warm-up, then the measured window.
        try await Task.sleep(for: .seconds(3))
        _ = recorder.takeRoundTrips()
        let acknowledgedBefore = workers.reduce(0) { $0 + $1.acknowledged }
        let statsBefore = coordinator.stats
        let windowStart = clock.now
        // Steps move on while the window runs, as training does.
        let stepping = Task {
            var step: Int64 = 1
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                step += 10
                for (index, worker) in workers.enumerated() {
                    worker.progress(step: step, metrics: TrainingCurve(seed: index).metrics(at: step))
                }
            }
        }
        try await Task.sleep(for: durationValue)
        stepping.cancel()
        let window = clock.now - windowStart
        let statsAfter = coordinator.stats
        try await Task.sleep(for: .milliseconds(500))
        let roundTrips = Percentiles(nanoseconds: recorder.takeRoundTrips())
        let acknowledged = workers.reduce(0) { $0 + $1.acknowledged } - acknowledgedBefore

        // The client's worst lag at 1 Hz (the rate measurement below saturates it on purpose).
        let clientLagPaced = clientLag.takeWorst()
        await clientLag.stop()

        // The highest sustained rate: every stream sends its next heartbeat as soon as the last one is acknowledged,
        // and only then (the pacer's heartbeats would come on top, folded into the acknowledgements that count: the
        // floor has none).
        pacing.cancel()
        await pacing.value
        // The paced heartbeats' answers first, so that no worker starts its loop with two heartbeats in flight; and
        // no longer, or the workers paced last a second ago pass the suspect timeout (2 s) before their next one.
        _ = await waitUntil(timeout: .seconds(1)) { workers.allSatisfy { !$0.awaitsAcknowledgement } }
        for worker in workers { worker.closedLoop(true) }
        try await Task.sleep(for: .seconds(2))
        _ = recorder.takeRoundTrips()
        let rateStart = clock.now
        let rateStatsBefore = coordinator.stats
        try await Task.sleep(for: rateDurationValue)
        let atMax = Percentiles(nanoseconds: recorder.takeRoundTrips())
        let heartbeatRate = Double(atMax.count) / (clock.now - rateStart).seconds
        let rateStatsAfter = coordinator.stats
        // The coordinator's CPU time per heartbeat at that rate (client and coordinator share this machine's cores,
        // so the rates also measure the client: hence the floor with the same client).
        let heartbeatCost = MessageCost(from: rateStatsBefore, to: rateStatsAfter, messages: atMax.count)
        for worker in workers { worker.closedLoop(false) }
        pacing = Task { await HeartbeatPacer.run(workers, interval: interval, until: clock.now + .seconds(86_400)) }
        // The streams drain, then a few paced rounds check that nobody was declared dead meanwhile.
        try await Task.sleep(for: .seconds(2))
        // Suspicions and deaths the coordinator logged, the workers' views or not (one recovered before an
        // acknowledgement said so reaches no worker), counted before the streams close.
        let loggedSuspicions = coordinator.logLines(containing: "worker suspected")
        let loggedDeaths = coordinator.logLines(containing: "worker declared dead")
        if let loggedDeaths, loggedDeaths > 0 {
            report.problem("the coordinator declared \(loggedDeaths) workers dead")
        }
        let ranking = rankingProblem(workers)
        pacing.cancel()
        await pacing.value
        await sessions.stop()
        // Then the workers leave, so that the floor can be measured again on a quiet coordinator: the heartbeats'
        // highest rate then lies between two of the floor's. Their sessions are closed first: a worker that leaves
        // while the others' sessions are open makes the coordinator push a new view to each of them.
        let leaving = clock.now
        let stayed = await deregisterAll(workers, connections, reason: "heartbeat bench: done", recorder: recorder)
        let left = clock.now - leaving
        // The workers deregistered last were silent for seconds by then: their suspicions and deaths meanwhile are
        // the departure's, reported apart.
        let departureSuspicions = coordinator.logLines(containing: "worker suspected").map {
            $0 - (loggedSuspicions ?? 0)
        }
        let departureDeaths = coordinator.logLines(containing: "worker declared dead").map { $0 - (loggedDeaths ?? 0) }
        if !stayed.isEmpty { report.problem("\(stayed.count) workers could not deregister") }
        let floorAfter =
            floors ? try await sessionFloor(count, connections, coordinator, interval: nil) : SessionFloor()
        if floors, let shortfall = floorAfter.shortfall("the session floor after the heartbeats", of: count) {
            report.problem(shortfall)
        }
        // Where the rest goes: the same no-op answer handed from a reader task to the handler, as the coordinator's
        // session does with its heartbeats (without its engine, and through a stream of its own, not its channel).
        let relay =
            floors
            ? try await sessionFloor(count, connections, coordinator, interval: nil, method: BenchService.relay)
            : SessionFloor()
        if floors, let shortfall = relay.shortfall("the relayed floor", of: count) { report.problem(shortfall) }
        // Every window done: errors and lost connections in any of them count.
        checkCorrectness(
            &report, recorder: recorder, live: workers, coordinator: coordinator, connections: connections)
        if let ranking { report.problem(ranking) }
        // Without both floors there is no ratio, and no goal met.
        let floorRate = floor.rate > 0 && floorAfter.rate > 0 ? (floor.rate + floorAfter.rate) / 2 : 0
        let floorCost = MessageCost.mean(floor.cost, floorAfter.cost)

        // Report. A worker's longest send gap tells whose doing a suspicion was: the client's if it went silent
        // longer than the suspect timeout, the coordinator's if not.
        let gaps = Percentiles(workers.map(\.longestSendGap))
        let suspectedGaps = Percentiles(workers.filter(\.sawSuspect).map(\.longestSendGap))
        let expected = Double(count) * window.seconds / interval.seconds
        let ratio = noopRate > 0 ? heartbeatRate / noopRate : 0
        let p99 = roundTrips.milliseconds(0.99)
        report.rows = [
            [
                "workers registered (one task), sessions opened", Figure.count(count), "",
                "\(Figure.seconds(registered.seconds)), \(Figure.seconds(opened.seconds))",
            ],
            [
                "heartbeats at 1 Hz over \(Figure.seconds(window.seconds)): acknowledged",
                Figure.count(acknowledged), "\(Figure.count(Int(expected))) sent (about)", "",
            ],
            [
                "heartbeat round trip p50 / p99 / max",
                "\(Figure.ms(roundTrips.milliseconds(0.5))) / \(Figure.ms(p99)) / \(Figure.ms(roundTrips.maxMilliseconds))",
                floors
                    ? "floors at 1 Hz: the same workers, no-op session method "
                        + "\(Figure.ms(floorTrips.milliseconds(0.5))) / \(Figure.ms(floorTrips.milliseconds(0.99))) / "
                        + "\(Figure.ms(floorTrips.maxMilliseconds)); raw no-op streams "
                        + "\(Figure.ms(noopTrips.milliseconds(0.5))) / \(Figure.ms(noopTrips.milliseconds(0.99))) / "
                        + Figure.ms(noopTrips.maxMilliseconds) : "",
                "p99 ≤ 20 ms \(Figure.met(p99 <= 20))",
            ],
            [
                "false deaths / false suspicions",
                "\(workers.filter(\.sawRejoin).count) / \(workers.filter(\.sawSuspect).count)",
                loggedSuspicions.map { "suspicions / deaths in the coordinator's log: \($0) / \(loggedDeaths ?? 0)" }
                    ?? "", "0 / 0",
            ],
            [
                "longest gap between a worker's heartbeats leaving the client p50 / p99 / max",
                "\(Figure.ms(gaps.milliseconds(0.5))) / \(Figure.ms(gaps.milliseconds(0.99))) / "
                    + Figure.ms(gaps.maxMilliseconds),
                "suspected workers' longest gap p50 / max: \(Figure.ms(suspectedGaps.milliseconds(0.5))) / "
                    + Figure.ms(suspectedGaps.maxMilliseconds),
                "",
            ],
            [
                "the client's own lag (its event loops plus its pool), worst while registering / at 1 Hz",
                "\(Figure.ms(clientLagRegistering.seconds * 1000)) / \(Figure.ms(clientLagPaced.seconds * 1000))",
                "a heartbeat handed to its stream waits that long before it leaves", "",
            ],
        ]
        if let before = statsBefore, let after = statsAfter {
            let cpu = (after.cpuSeconds - before.cpuSeconds) / window.seconds
            report.rows.append([
                "coordinator CPU at 1 Hz (of one core) / RSS", String(format: "%.0f %%", cpu * 100),
                Figure.bytes(Double(after.residentBytes)),
                coordinator.isSeparateProcess ? "" : "(this process: swarm included)",
            ])
            report.figures["coordinator_cpu_fraction"] = cpu
            report.figures["coordinator_rss_bytes"] = after.residentBytes
        }
        let floorRatio = floorRate > 0 ? heartbeatRate / floorRate : 0
        report.rows.append([
            "highest sustained heartbeat rate (\(Figure.count(count)) streams, each sending on acknowledgement)",
            Figure.rate(heartbeatRate),
            floors
                ? "the same workers' heartbeats answered at once by a no-op session method: \(Figure.rate(floorRate)) "
                    + "(the mean of before, \(Figure.rate(floor.rate)), and after, \(Figure.rate(floorAfter.rate)))"
                : "",
            !floors
                ? ""
                : floorRate > 0
                    ? "\(Figure.ratio(floorRatio)) (≥ 0.8×) \(Figure.met(floorRatio >= 0.8))" : "no floor ✗",
        ])
        if floors {
            let relayRatio = relay.rate > 0 ? heartbeatRate / relay.rate : 0
            report.rows.append([
                "the no-op session's answers relayed from a reader task to the handler (roughly the coordinator's "
                    + "session, no engine)",
                Figure.rate(relay.rate),
                "÷ the no-op session method: \(Figure.ratio(floorRate > 0 ? relay.rate / floorRate : 0))",
                "heartbeats ÷ these: \(Figure.ratio(relayRatio))",
            ])
            report.rows.append([
                "no-op stream messages (raw bytes: no protobuf on either side, a lighter client)",
                Figure.rate(noopRate), "heartbeats ÷ these: \(Figure.ratio(ratio))", "",
            ])
        }
        if !floors, let heartbeatCost, coordinator.isSeparateProcess {
            report.rows.append([
                "coordinator CPU per heartbeat at that rate", Figure.microseconds(heartbeatCost.cpu.seconds), "", "",
            ])
            report.figures["coordinator_cpu_per_heartbeat_us"] = heartbeatCost.cpu.seconds * 1e6
        }
        if let heartbeatCost, let noopCost, let floorCost, coordinator.isSeparateProcess {
            let (heartbeatCPU, floorCPU, noopCPU) = (heartbeatCost.cpu, floorCost.cpu, noopCost.cpu)
            let cpuRatio = floorCPU.seconds / max(heartbeatCPU.seconds, 1e-9)
            report.rows.append([
                "coordinator CPU per heartbeat at that rate", Figure.microseconds(heartbeatCPU.seconds),
                "per no-op session message: \(Figure.microseconds(floorCPU.seconds)); per raw no-op message: "
                    + Figure.microseconds(noopCPU.seconds),
                "\(Figure.ratio(cpuRatio)) (messages per CPU second, heartbeat ÷ no-op session message)",
            ])
            report.figures["coordinator_cpu_per_heartbeat_us"] = heartbeatCPU.seconds * 1e6
            report.figures["coordinator_cpu_per_noop_us"] = noopCPU.seconds * 1e6
            report.figures["coordinator_cpu_per_floor_us"] = floorCPU.seconds * 1e6
            report.figures["cpu_ratio"] = cpuRatio
            if let relayCPU = relay.cost?.cpu {
                report.rows.append([
                    "coordinator CPU per relayed no-op session message", Figure.microseconds(relayCPU.seconds), "", "",
                ])
                report.figures["coordinator_cpu_per_relay_us"] = relayCPU.seconds * 1e6
            }
            if let heartbeat = heartbeatCost.instructions, let floor = floorCost.instructions,
                let noop = noopCost.instructions
            {
                let instructionRatio = floor / max(heartbeat, 1)
                report.rows.append([
                    "coordinator instructions per heartbeat at that rate (callgrind)", Figure.count(Int(heartbeat)),
                    "per no-op session message: \(Figure.count(Int(floor))); per raw no-op message: "
                        + Figure.count(Int(noop)),
                    "\(Figure.ratio(instructionRatio)) (messages per instruction, heartbeat ÷ no-op session message)",
                ])
                report.figures["instructions_per_heartbeat"] = heartbeat
                report.figures["instructions_per_floor"] = floor
                report.figures["instructions_per_noop"] = noop
                report.figures["instruction_ratio"] = instructionRatio
                if let relayed = relay.cost?.instructions {
                    report.rows.append([
                        "coordinator instructions per relayed no-op session message (callgrind)",
                        Figure.count(Int(relayed)), "", "",
                    ])
                    report.figures["instructions_per_relay"] = relayed
                }
            }
        }
        if callgrind != nil {
            // Every window counted (the ratio is there), and the heartbeats' profile written.
            if let profile = rateStatsAfter?.profile, report.figures["instruction_ratio"] != nil {
                report.rows.append(["callgrind profile of the heartbeats at their highest rate", profile, "", ""])
                report.figures["callgrind_profile"] = profile
                report.notes.append(
                    "Under callgrind the coordinator ran 30-50× slower, one thread at a time: its rates, CPU times and "
                        + "round trips above are not the goals' figures (their ✓ and ✗ do not apply); its instructions "
                        + "are the measurement.")
            } else {
                report.problem(
                    "callgrind counted no instructions of a measured window: "
                        + (coordinator.callgrindFailure ?? "a window's CPU figures were missing"))
            }
        }
        report.rows.append([
            "round trip at that rate p50 / p99",
            "\(Figure.ms(atMax.milliseconds(0.5))) / \(Figure.ms(atMax.milliseconds(0.99)))",
            "", "",
        ])
        report.figures["workers"] = count
        report.figures["connections"] = connections.count
        report.figures["window_seconds"] = window.seconds
        report.figures["acknowledged"] = acknowledged
        report.figures["p50_ms"] = roundTrips.milliseconds(0.5)
        report.figures["p99_ms"] = p99
        report.figures["max_ms"] = roundTrips.maxMilliseconds
        if let loggedSuspicions { report.figures["logged_suspicions"] = loggedSuspicions }
        if let loggedDeaths { report.figures["logged_deaths"] = loggedDeaths }
        if let departureSuspicions { report.figures["departure_suspicions"] = departureSuspicions }
        if let departureDeaths { report.figures["departure_deaths"] = departureDeaths }
        report.figures["client_lag_registering_ms"] = clientLagRegistering.seconds * 1000
        report.figures["client_lag_paced_ms"] = clientLagPaced.seconds * 1000
        report.figures["send_gap_p99_ms"] = gaps.milliseconds(0.99)
        report.figures["send_gap_max_ms"] = gaps.maxMilliseconds
        report.figures["suspected_send_gap_max_ms"] = suspectedGaps.maxMilliseconds
        report.figures["max_rate_per_second"] = heartbeatRate
        report.figures["deregistration_seconds"] = left.seconds
        report.figures["registration_seconds"] = registered.seconds
        report.figures["goal_p99_met"] = p99 <= 20
        // The floors' figures and the rate's goal only where the floors were measured.
        if floors {
            report.figures["noop_p50_ms"] = noopTrips.milliseconds(0.5)
            report.figures["noop_p99_ms"] = noopTrips.milliseconds(0.99)
            report.figures["noop_round_trips"] = noopTrips.count
            report.figures["floor_p50_ms"] = floorTrips.milliseconds(0.5)
            report.figures["floor_p99_ms"] = floorTrips.milliseconds(0.99)
            report.figures["floor_round_trips"] = floorTrips.count
            report.figures["noop_rate_per_second"] = noopRate
            report.figures["floor_rate_per_second"] = floorRate
            report.figures["floor_rate_before_per_second"] = floor.rate
            report.figures["floor_rate_after_per_second"] = floorAfter.rate
            report.figures["relay_rate_per_second"] = relay.rate
            report.figures["rate_ratio"] = floorRatio
            report.figures["noop_rate_ratio"] = ratio
            report.figures["goal_rate_met"] = floorRate > 0 && floorRatio >= 0.8
        }
        if Double(acknowledged) < expected * 0.95 {
            report.problem("only \(acknowledged) of about \(Int(expected)) heartbeats were acknowledged")
        }
        return report
    }

    /// The floors of the heartbeats: `count` simulated workers of their own, the same client code as the measured
    /// ones, each with a session stream to the benchmarks' `Session` method, which answers every heartbeat with an
    /// acknowledgement at once and does nothing else. First paced once per `interval` as the measured workers are
    /// (round trips of the heartbeats sent in `--duration`, after a warm-up), then every worker sending its next
    /// heartbeat on acknowledgement (round trips per second over `--rate-duration`, and the coordinator's CPU time per
    /// round trip). Client and coordinator share this machine's cores, so against the raw no-op messages (no protobuf,
    /// a lighter client) the heartbeats' figures would also measure the client. Without an `interval`, only the
    /// highest rate; with `BenchService.relay` as the `method`, the floor in the coordinator's shape of a session.
    private func sessionFloor(
        _ count: Int, _ connections: SwarmConnections, _ coordinator: BenchCoordinator, interval: Duration?,
        method: MethodDescriptor = BenchService.session
    ) async throws -> SessionFloor {
        let recorder = SwarmRecorder()
        let workers = makeWorkers(count, prefix: "floor", task: { _ in "swarm-heartbeat" }, recorder: recorder)
        for (index, worker) in workers.enumerated() {
            worker.progress(step: 1, metrics: TrainingCurve(seed: index).metrics(at: 1))
        }
        // A session that ends before the floor is measured (an error, or the server ending it) counts as failed.
        let measured = Shared(false)
        let sessions = workers.map { worker in
            Task {
                try? await worker.runSession(connections, method: method)
                return !measured.value
            }
        }
        defer { for session in sessions { session.cancel() } }
        if !(await waitUntil(timeout: .seconds(60)) { workers.allSatisfy { $0.acknowledged > 0 } }) {
            for worker in workers { worker.endSession() }
            await endGracefully(sessions)
            return SessionFloor(unanswered: workers.filter { $0.acknowledged == 0 }.count)
        }
        var paced: [Int64] = []
        if let interval {
            let pacing = Task { await HeartbeatPacer.run(workers, interval: interval, until: .now + .seconds(86_400)) }
            defer { pacing.cancel() }
            try await Task.sleep(for: .seconds(3))
            _ = recorder.takeRoundTrips()
            try await Task.sleep(for: durationValue)
            pacing.cancel()
            await pacing.value
            // The window's last answers (a second is far beyond any round trip at 1 Hz).
            try await Task.sleep(for: .seconds(1))
            paced = recorder.takeRoundTrips()
        }
        // Then the highest rate.
        for worker in workers { worker.closedLoop(true) }
        try await Task.sleep(for: .seconds(2))
        // Counted as the heartbeats' rate is: round trips, each acknowledgement answering the heartbeats before it.
        _ = recorder.takeRoundTrips()
        let clock = ContinuousClock()
        let start = clock.now
        let statsBefore = coordinator.stats
        try await Task.sleep(for: rateDurationValue)
        let answered = recorder.takeRoundTrips().count
        let elapsed = clock.now - start
        let statsAfter = coordinator.stats
        measured.withLock { $0 = true }
        for worker in workers {
            worker.closedLoop(false)
            worker.endSession()
        }
        await endGracefully(sessions)
        var failed = 0
        for session in sessions where await session.value { failed += 1 }
        let cost = MessageCost(from: statsBefore, to: statsAfter, messages: answered)
        return SessionFloor(paced: paced, rate: Double(answered) / elapsed.seconds, cost: cost, failed: failed)
    }
}

/// What a session floor measured (``SwarmBench/heartbeat()``): the round trips at 1 Hz (none when only the highest
/// rate was measured), the highest rate and the coordinator's cost a message there, and the sessions that had no answer
/// or failed.
struct SessionFloor {
    var paced: [Int64] = []
    var rate: Double = 0
    var cost: MessageCost?
    var unanswered = 0
    var failed = 0

    /// Why the floor named `name`, of `count` sessions, does not count; nil when it does.
    func shortfall(_ name: String, of count: Int) -> String? {
        guard unanswered > 0 || failed > 0 || rate <= 0 else { return nil }
        return "\(name) is short: \(unanswered) of \(count) sessions had no answer, \(failed) failed"
    }
}

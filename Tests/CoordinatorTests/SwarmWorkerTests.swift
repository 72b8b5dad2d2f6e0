import Coordinator
import Foundation
import Logging
import RuntimeCore
import ServiceLifecycle
import Swarm
import Testing

/// The swarm's simulated workers against the whole coordinator on loopback: what they do on the wire where the SDK's
/// `Worker` would do the same.
@Suite("Simulated workers on loopback", .timeLimit(.minutes(5)))
struct SwarmWorkerTests {
    /// Runs a coordinator whose suspect timeout is 3 s, and `body` with one swarm connection to it.
    func withSwarm(_ body: @Sendable (SwarmConnections) async throws -> Void) async throws {
        let directory = TemporaryDirectory()
        let config = CoordinatorConfig(
            grpcPort: 0, httpPort: 0, dataDir: directory.path,
            membership: try MembershipConfig(
                heartbeatInterval: .milliseconds(500), suspectAfter: .seconds(3), deadAfter: .seconds(6)))
        var logger = Logger(label: "swarm-test")
        logger.logLevel = .warning
        let runtime = try buildCoordinator(config: config, logger: logger)
        let group = ServiceGroup(services: runtime.services, logger: logger)
        let running = Task { try await group.run() }
        let ports = try await runtime.waitUntilListening()
        let connections = try SwarmConnections(target: SwarmTarget(host: "127.0.0.1", port: ports.grpc), connections: 1)
        let serving = Task { try await connections.run() }
        do {
            try await body(connections)
        } catch {
            connections.shutdown()
            _ = try? await serving.value
            await group.triggerGracefulShutdown()
            _ = try? await running.value
            throw error
        }
        connections.shutdown()
        _ = try? await serving.value
        await group.triggerGracefulShutdown()
        try await running.value
    }

    @Test(
        "a registration refused WORKER_ID_IN_USE waits until the member is silent for the suspect timeout, as the SDK")
    func waitsForItsId() async throws {
        try await withSwarm { connections in
            let recorder = SwarmRecorder()
            let clock = ContinuousClock()
            let started = clock.now
            let first = SimulatedWorker(id: "w-0", task: "t", connection: 0, recorder: recorder)
            try await first.register(connections)
            // Another process of the same id, without the first one's secret: the id is in use until the first one
            // has been silent for the suspect timeout (3 s), then it is taken over with a new secret.
            let second = SimulatedWorker(id: "w-0", task: "t", connection: 0, recorder: recorder)
            let reply = try await second.register(connections)
            #expect(clock.now - started >= .milliseconds(2900))
            #expect(recorder.counted("id_in_use_waits") >= 1)
            #expect(reply.view.taskID == "t" && !reply.workerSecret.isEmpty)
            #expect(reply.workerSecret != first.secret)
        }
    }

    @Test("a swarm's sessions end gracefully: the connection they used stays up and carries the next calls")
    func sessionsEndGracefully() async throws {
        try await withSwarm { connections in
            let recorder = SwarmRecorder()
            // More streams on one connection than swift-nio-http2 remembers resets of (32), all sending as fast as
            // they are answered, so frames are always in flight when the sessions end.
            let workers = (0..<200).map { SimulatedWorker(id: "s-\($0)", task: "t", connection: 0, recorder: recorder) }
            let sessions = SwarmSessions([], connections: connections)
            #expect(await registerAll(workers, connections, opening: sessions, recorder: recorder).isEmpty)
            for worker in workers { worker.closedLoop(true) }
            let deadline = ContinuousClock.now + .seconds(20)
            while !workers.allSatisfy({ $0.acknowledged > 2 }), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(workers.allSatisfy { $0.acknowledged > 2 })
            await sessions.stop()
            #expect(workers.allSatisfy { !$0.hasSession })
            #expect(recorder.counted("session_breaks") == 0)
            // The connection the sessions used carries the next calls: none fails for want of a connection.
            try await withThrowingDiscardingTaskGroup { group in
                for worker in workers { group.addTask { try await worker.deregister(connections) } }
            }
            #expect(recorder.counted("unavailable_retries") == 0)
            #expect(recorder.errorCount == 0)
            #expect(connections.made == 1)
        }
    }

    @Test(
        "a session opened after its worker's sessions were ended ends at once; a replaced one's end spares the new one"
    )
    func sessionsOpenedLateOrReplaced() async throws {
        try await withSwarm { connections in
            let recorder = SwarmRecorder()
            let worker = SimulatedWorker(id: "r-0", task: "t", connection: 0, recorder: recorder)
            try await worker.register(connections)
            let sessions = SwarmSessions([worker], connections: connections)
            #expect(await waitFor { worker.acknowledged > 0 })
            // Opened again while open: the old stream is broken, and its end must not take the new one's requests.
            let before = worker.acknowledged
            sessions.open(worker)
            #expect(await waitFor { worker.acknowledged > before && worker.hasSession })
            try await Task.sleep(for: .milliseconds(200))
            #expect(worker.hasSession)
            let again = worker.acknowledged
            worker.beat()
            #expect(await waitFor { worker.acknowledged > again })
            await sessions.stop()
            // A session that opens after the end (one reopening as `stop()` runs) sends nothing and returns at once.
            let acknowledged = worker.acknowledged
            let late = Task { try await worker.runSession(connections) }
            // A session that opened would run until cancelled here, and end with the cancellation.
            let limit = Task {
                try await Task.sleep(for: .seconds(30))
                late.cancel()
            }
            let outcome = await late.result
            limit.cancel()
            #expect((try? outcome.get()) != nil, "returned by itself, not cancelled")
            #expect(worker.acknowledged == acknowledged && !worker.hasSession)
        }
    }

    @Test("a worker's sessions back off while they fail, and from 50 ms again once one was answered, as the SDK's")
    func sessionsBackOff() async throws {
        try await withSwarm { connections in
            let recorder = SwarmRecorder()
            let worker = SimulatedWorker(id: "b-0", task: "t", connection: 0, recorder: recorder)
            // Not registered yet: each session is refused at its first heartbeat, and the waits between them grow
            // (50, 100, 200, 400 ms, each ±20 %, plus a refusal's round trip).
            let sessions = SwarmSessions([worker], connections: connections)
            let newer = SimulatedWorker(id: "b-0", task: "t", connection: 0, recorder: SwarmRecorder())
            var replacing: Task<Void, Never>?
            do {
                #expect(await waitFor { sessions.breakTimes.count >= 5 })
                let refused = sessions.breakTimes
                let gaps = zip(refused.dropFirst(), refused).map { Double($0 - $1) / 1e6 }
                #expect(gaps.count >= 4 && gaps[0] >= 40 && gaps[3] >= 320, "waits between refusals (ms): \(gaps)")
                // Registered: the next session (after the grown wait, 800 ms or more by now) is answered...
                try await worker.register(connections)
                #expect(await waitFor { worker.acknowledged > 0 })
                let answered = worker.session.number
                let breaks = sessions.breakTimes.count
                // ...then the coordinator ends it (a newer stream of the same worker replaces it): the worker comes
                // back after the first wait again (40-60 ms), not after the grown one (at least 800 ms).
                newer.adopt(secret: worker.secret)
                replacing = Task { try? await newer.runSession(connections) }
                #expect(await waitFor { sessions.breakTimes.count > breaks })
                let broken = sessions.breakTimes.last ?? 0
                #expect(await waitFor { worker.session.number > answered })
                let back = Double(monotonicNanoseconds() - broken) / 1e6
                #expect(back < 700, "back \(back) ms after its answered session was ended")
                #expect(await waitFor { worker.session.acknowledged > 0 })
            } catch {
                await sessions.stop()
                throw error
            }
            await sessions.stop()
            newer.endSession()
            await replacing?.value
        }
    }

    /// Waits up to 30 s for `condition`; whether it came true. (It does not throw: the test goes on to stop what it
    /// started, since a coordinator does not shut down while streams are open.)
    func waitFor(_ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(30)
        while !condition() {
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }
}

import Logging
import RuntimeCore
import Storage
import Synchronization
import Testing

@testable import Coordinator

/// A real SQLite store whose writes can be made to fail, like a full disk, or to wait, like a slow one.
final class FailingDisk: Sendable {
    let store: SQLiteStateStore
    private let failing = Mutex(false)
    private let holding = Mutex(false)

    init(path: String) throws {
        store = try SQLiteStateStore(path: path)
    }

    func fail(_ value: Bool) { failing.withLock { $0 = value } }

    /// While held, a write waits (and then lands).
    func hold(_ value: Bool) { holding.withLock { $0 = value } }

    func commit(_ changes: [StateChange]) async throws(StorageError) {
        while holding.withLock({ $0 }), !Task.isCancelled { try? await Task.sleep(for: .milliseconds(5)) }
        if failing.withLock({ $0 }) { throw StorageError(.unavailable, "cannot write the state database: disk full") }
        try await store.commit(changes)
    }
}

@Suite("Engine: nothing leaves the coordinator before it is durable", .timeLimit(.minutes(5)))
struct EngineDurabilityTests {
    /// An engine on a disk that can be made to fail, with a manual clock.
    func makeEngine(_ directory: TemporaryDirectory) throws -> (FailingDisk, ManualMoments, CoordinatorEngine) {
        let disk = try FailingDisk(path: directory.databasePath)
        let clock = ManualMoments()
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let engine = CoordinatorEngine(
            membershipConfig: .defaults, restoring: try disk.store.loadMembership(),
            queue: WriteBehindQueue(commit: disk.commit), now: { clock.now }, logger: logger)
        return (disk, clock, engine)
    }

    @Test("while the disk fails, joins fail, heartbeats keep workers alive but reveal no new epoch; then it catches up")
    func diskFull() async throws {
        let directory = TemporaryDirectory()
        let (disk, clock, engine) = try makeEngine(directory)
        let a = try WorkerID("a")

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await engine.queue.run() }
            #expect(try await engine.register(try spec("a")).epoch == 1)

            disk.fail(true)
            let joinError = await #expect(throws: StorageError.self) { try await engine.register(try spec("b")) }
            #expect(joinError?.message.contains("disk full") == true)
            // Heartbeats are answered UNAVAILABLE at once (epoch 2 is not durable) but still count as signs of life.
            for _ in 0..<24 {
                clock.advance(.milliseconds(250))
                for name in ["a", "b"] {
                    await #expect(throws: StorageError.self) {
                        try await engine.heartbeat(try WorkerID(name), step: 1, metrics: [:])
                    }
                }
                await engine.tick()
            }
            #expect(await engine.workers().map(\.health) == [.healthy, .healthy])

            disk.fail(false)
            // The failed batch is retried with backoff; once it lands, a sees b's join.
            var view: MembershipView?
            while view == nil {
                try await Task.sleep(for: .milliseconds(20))
                view = try? await engine.heartbeat(a, step: 2, metrics: [:])
            }
            #expect(view?.epoch == 2 && view?.worldSize == 2)
            engine.queue.finish()
            try await group.waitForAll()
        }
        let persisted = try disk.store.loadMembership()
        #expect(Set(persisted.records.map(\.spec.id.rawValue)) == ["a", "b"])
        #expect(persisted.epochs == [.default: 2])
    }

    @Test(
        "a session heartbeat is acknowledged once its view is durable: while the disk fails it counts unacknowledged")
    func sessionWhileDiskFails() async throws {
        try await withSession { disk, engine, stream in
            #expect(
                engine.sessions.channel(of: try WorkerID("a")) === stream.channel, "attached on its first heartbeat")

            disk.fail(true)
            await #expect(throws: StorageError.self) { try await engine.register(try spec("b")) }
            try stream.beat(2)
            // Recorded (a sign of life, its step), but epoch 2 is not durable: no acknowledgement.
            #expect(await eventually { await step(of: "a", in: engine) == 2 })
            try await Task.sleep(for: .milliseconds(200))
            #expect(stream.acknowledgements() == [1])

            disk.fail(false)
            // The failed batch is retried with backoff; once it lands, the next heartbeat is acknowledged at epoch 2.
            var next: Int64 = 3
            #expect(
                await eventually {
                    try? stream.beat(next)
                    next += 1
                    return stream.acknowledgements().last == 2
                })
        }
    }

    @Test(
        "a session heartbeat whose view is still being written is acknowledged when the write lands, at the new epoch")
    func sessionWhileDiskIsSlow() async throws {
        try await withSession { disk, engine, stream in
            disk.hold(true)
            let joining = Task { try await engine.register(try spec("b")) }
            #expect(await eventually { await engine.workers().count == 2 }, "b's join is recorded, being written")
            try stream.beat(2)
            #expect(await eventually { await step(of: "a", in: engine) == 2 })
            try await Task.sleep(for: .milliseconds(200))
            #expect(stream.acknowledgements() == [1], "epoch 2 is not durable yet")

            disk.hold(false)
            #expect(await eventually { stream.acknowledgements() == [1, 2] }, "no new heartbeat needed")
            #expect(try await joining.value.epoch == 2)
        }
    }

    @Test("a backlog of session heartbeats is taken in turns of 256, other calls to the engine let in between")
    func heartbeatBacklogLetsOthersIn() async throws {
        let directory = TemporaryDirectory()
        let (_, clock, engine) = try makeEngine(directory)
        // Long enough a drain (20 turns) for the other calls to be waiting at its yields on a busy machine.
        let count = 20 * CoordinatorEngine.heartbeatBatch
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await engine.queue.run() }
            try await withThrowingTaskGroup(of: Void.self) { registering in
                for index in 0..<count { registering.addTask { _ = try await engine.register(try spec("w\(index)")) } }
                try await registering.waitForAll()
            }
            // Every worker's first heartbeat waits in the inbox; nothing drains it yet.
            for index in 0..<count {
                let stream = EngineStream(engine: engine, clock: clock, worker: "w\(index)")
                #expect(stream.channel.put(try stream.heartbeat(1), arrivedAt: clock.now.monotonic))
                _ = engine.heartbeatInbox.add(stream.channel)
            }
            // Another caller queues for the engine over and over, noting how many heartbeats it finds taken.
            let seen = Mutex<[Int]>([])
            let observing = Task {
                while !Task.isCancelled {
                    let taken = await engine.heartbeatsTaken()
                    seen.withLock { $0.append(taken) }
                    if taken == count { return }
                }
            }
            #expect(await eventually { !seen.withLock { $0.isEmpty } })
            await engine.takeHeartbeats()
            #expect(await engine.heartbeatsTaken() == count)
            // The drain is over: what the other caller saw during it is noted.
            observing.cancel()
            await observing.value
            let between = seen.withLock { $0.filter { $0 > 0 && $0 < count } }
            #expect(!between.isEmpty, "the other caller got in during the drain")
            #expect(between.allSatisfy { $0 % CoordinatorEngine.heartbeatBatch == 0 }, "only between turns")
            engine.queue.finish()
            try await group.waitForAll()
        }
    }

    /// Runs `body` with an engine on a disk that can be made to fail or wait, and the session stream of its member
    /// "a", whose first heartbeat is acknowledged (at epoch 1); then ends the stream and the engine's writer.
    private func withSession(_ body: (FailingDisk, CoordinatorEngine, EngineStream) async throws -> Void) async throws {
        let directory = TemporaryDirectory()
        let (disk, clock, engine) = try makeEngine(directory)
        let stream = EngineStream(engine: engine, clock: clock)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await engine.queue.run() }
            group.addTask { try await stream.serve() }
            _ = try await engine.register(try spec("a"))
            try stream.beat(1)
            #expect(await eventually { stream.acknowledgements() == [1] })
            try await body(disk, engine, stream)
            stream.channel.close(reason: "test over")
            engine.queue.finish()
            try await group.waitForAll()
        }
    }

    func spec(_ name: String) throws -> WorkerSpec { WorkerSpec(id: try WorkerID(name), host: "h", port: 1) }

    func step(of worker: String, in engine: CoordinatorEngine) async -> Int64? {
        await engine.workers().first { $0.record.spec.id.rawValue == worker }?.step
    }

    /// Polls `condition` every 20 ms for up to 60 s.
    func eventually(_ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

/// A worker's session stream as the gRPC handler drives it, straight against the engine: its reader's hand-over
/// (``beat(_:)``) and its serving task (``serve()``), which notes what it writes.
private final class EngineStream: Sendable {
    let engine: CoordinatorEngine
    let clock: ManualMoments
    let worker: String
    let channel = SessionChannel()
    private let written = Mutex<[SessionUpdate]>([])

    init(engine: CoordinatorEngine, clock: ManualMoments, worker: String = "a") {
        self.engine = engine
        self.clock = clock
        self.worker = worker
    }

    func heartbeat(_ step: Int64) throws -> ValidatedHeartbeat {
        try ValidatedHeartbeat(
            .with {
                $0.workerID = worker
                $0.step = step
            })
    }

    /// What the stream's reader does with a heartbeat.
    func beat(_ step: Int64) throws {
        if channel.put(try heartbeat(step), arrivedAt: clock.now.monotonic) { engine.hand(channel) }
    }

    /// What the stream's serving task does, until the stream ends.
    func serve() async throws {
        while let update = try await channel.next(handOff: { self.engine.hand(self.channel) }) {
            written.withLock { $0.append(update) }
        }
    }

    /// The epochs of the acknowledgements written.
    func acknowledgements() -> [UInt64] {
        written.withLock { $0.filter { $0.kind == .heartbeatAck } }.map(\.view.epoch)
    }
}

extension CoordinatorEngine {
    /// The heartbeats recorded, as a call queued for the actor sees it.
    fileprivate func heartbeatsTaken() -> Int { metrics.heartbeatsTotal }
}

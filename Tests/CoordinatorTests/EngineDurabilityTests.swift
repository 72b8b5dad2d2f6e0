import Logging
import RuntimeCore
import Storage
import Synchronization
import Testing

@testable import Coordinator

/// A real SQLite store whose writes can be made to fail, like a full disk.
final class FailingDisk: Sendable {
    let store: SQLiteStateStore
    private let failing = Mutex(false)

    init(path: String) throws {
        store = try SQLiteStateStore(path: path)
    }

    func fail(_ value: Bool) { failing.withLock { $0 = value } }

    func commit(_ changes: [StateChange]) async throws(StorageError) {
        if failing.withLock({ $0 }) { throw StorageError(.unavailable, "cannot write the state database: disk full") }
        try await store.commit(changes)
    }
}

@Suite("Engine: nothing leaves the coordinator before it is durable")
struct EngineDurabilityTests {
    /// An engine on a disk that can be made to fail, with a manual clock.
    func makeEngine(_ directory: TemporaryDirectory) throws -> (FailingDisk, ManualMoments, CoordinatorEngine) {
        let disk = try FailingDisk(path: directory.databasePath)
        let clock = ManualMoments()
        let engine = CoordinatorEngine(
            membershipConfig: .defaults, restoring: try disk.store.loadMembership(),
            queue: WriteBehindQueue(commit: disk.commit), now: { clock.now }, logger: Logger(label: "test"))
        return (disk, clock, engine)
    }

    @Test("while the disk fails, joins fail, heartbeats keep workers alive but reveal no new epoch; then it catches up")
    func diskFull() async throws {
        let directory = TemporaryDirectory()
        let (disk, clock, engine) = try makeEngine(directory)
        let a = try WorkerID("a")
        func spec(_ name: String) throws -> WorkerSpec { WorkerSpec(id: try WorkerID(name), host: "h", port: 1) }

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
        let directory = TemporaryDirectory()
        let (disk, clock, engine) = try makeEngine(directory)
        func spec(_ name: String) throws -> WorkerSpec { WorkerSpec(id: try WorkerID(name), host: "h", port: 1) }
        let channel = SessionChannel()
        // What the stream's reader and serving task do.
        func beat(_ step: Int64) throws {
            let heartbeat = try ValidatedHeartbeat(
                .with {
                    $0.workerID = "a"
                    $0.step = step
                })
            if channel.put(heartbeat, arrivedAt: clock.now.monotonic) { engine.hand(channel) }
        }
        let written = Written()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await engine.queue.run() }
            group.addTask {
                while let update = try await channel.next(handOff: { engine.hand(channel) }) {
                    written.updates.withLock { $0.append(update) }
                }
            }
            func acknowledgements() -> [UInt64] {
                written.updates.withLock { $0.filter { $0.kind == .heartbeatAck } }.map(\.view.epoch)
            }
            _ = try await engine.register(try spec("a"))
            try beat(1)
            #expect(await eventually { acknowledgements() == [1] })
            #expect(engine.sessions.channel(of: try WorkerID("a")) === channel, "attached on its first heartbeat")

            disk.fail(true)
            await #expect(throws: StorageError.self) { try await engine.register(try spec("b")) }
            try beat(2)
            // Recorded (a sign of life, its step), but epoch 2 is not durable: no acknowledgement.
            #expect(await eventually { await engine.workers().first { $0.record.spec.id.rawValue == "a" }?.step == 2 })
            try await Task.sleep(for: .milliseconds(200))
            #expect(acknowledgements() == [1])

            disk.fail(false)
            // The failed batch is retried with backoff; once it lands, the next heartbeat is acknowledged at epoch 2.
            var step: Int64 = 3
            #expect(
                await eventually {
                    try? beat(step)
                    step += 1
                    return acknowledgements().last == 2
                })
            channel.close(reason: "test over")
            engine.queue.finish()
            try await group.waitForAll()
        }
    }

    /// Polls `condition` every 20 ms for up to 60 s.
    func eventually(_ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}

/// What a session's serving task wrote.
private final class Written: Sendable {
    let updates = Mutex<[SessionUpdate]>([])
}

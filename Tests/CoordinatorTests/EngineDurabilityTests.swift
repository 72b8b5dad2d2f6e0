import Coordinator
import Logging
import RuntimeCore
import Storage
import Synchronization
import Testing

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
    @Test("while the disk fails, joins fail, heartbeats keep workers alive but reveal no new epoch; then it catches up")
    func diskFull() async throws {
        let directory = TemporaryDirectory()
        let disk = try FailingDisk(path: directory.databasePath)
        let clock = ManualMoments()
        let engine = CoordinatorEngine(
            membershipConfig: .defaults, restoring: try disk.store.loadMembership(),
            queue: WriteBehindQueue(commit: disk.commit), now: { clock.now }, logger: Logger(label: "test"))
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
}

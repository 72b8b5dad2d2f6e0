import Coordinator
import RuntimeCore
import Testing

@Suite("Engine: restart grace")
struct EngineRestartTests {
    @Test("restored workers are neither suspected nor declared dead within the grace; the unheard die at its end")
    func restoredWorkersKeepTheirGrace() async throws {
        let directory = TemporaryDirectory()
        let first = try Harness(directory: directory)
        let task = try TaskID("restart")
        let ids = try (0..<300).map { try WorkerID("w-\($0)") }
        try await first.withClient { _ in
            for id in ids {
                _ = try await first.engine.register(WorkerSpec(id: id, taskID: task, host: "127.0.0.1", port: 7000))
            }
        }

        // The same database, as a coordinator restarted after a crash reads it.
        let second = try Harness(directory: directory)
        for _ in 0..<49 {
            second.clock.advance(.milliseconds(100))
            await second.engine.tick()
        }
        let restored = await second.engine.workers()
        #expect(restored.count == ids.count)
        #expect(
            restored.allSatisfy { $0.health == .healthy && $0.rank != nil },
            "4.9 s after the restart no restored worker is suspected or dead")

        // One worker is heard from; the others never are, and die at the end of the grace (5 s).
        _ = try await second.engine.heartbeat(ids[0], step: 1, metrics: [:])
        second.clock.advance(.milliseconds(100))
        await second.engine.tick()
        let after = await second.engine.workers()
        #expect(after.filter { $0.health == .healthy }.map(\.record.spec.id) == [ids[0]])
        #expect(after.filter { $0.health == .dead }.count == ids.count - 1)
    }
}

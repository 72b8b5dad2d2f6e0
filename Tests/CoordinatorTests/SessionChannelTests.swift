import RuntimeCore
import RuntimeProto
import Testing

@testable import Coordinator

@Suite("SessionChannel: one session stream between its reader, the engine and the task that serves it")
struct SessionChannelTests {
    func beat(step: Int64, metrics: [String: Double] = [:]) throws -> ValidatedHeartbeat {
        try ValidatedHeartbeat(
            .with {
                $0.workerID = "w-1"
                $0.step = step
                $0.metrics = metrics
            })
    }

    func view(epoch: UInt64) throws -> SessionUpdate {
        SessionUpdate(
            kind: .push,
            view: MembershipView(
                taskID: try TaskID("t"), rank: 0, worldSize: 1, epoch: epoch, command: .proceed, health: .healthy))
    }

    /// The serving task's next step, as something comparable: an update's epoch or a heartbeat's step.
    func take(_ channel: SessionChannel) async throws -> String? {
        switch try await channel.next() {
        case .update(let update): "update \(update.view.epoch)"
        case .heartbeat(let pending): "heartbeat \(pending.heartbeat.step) at \(pending.arrivedAt)"
        case nil: nil
        }
    }

    @Test("updates go out before the waiting heartbeat, in the order the engine queued them")
    func updatesFirst() async throws {
        let channel = SessionChannel()
        channel.put(try beat(step: 1), arrivedAt: .seconds(1))
        channel.send(try view(epoch: 7))
        channel.send(try view(epoch: 8))
        #expect(try await take(channel) == "update 7")
        #expect(try await take(channel) == "update 8")
        #expect(try await take(channel) == "heartbeat 1 at 1.0 seconds")
    }

    @Test("heartbeats the engine has not taken fold into one: the latest step and arrival, the latest metrics")
    func heartbeatsFold() async throws {
        let channel = SessionChannel()
        channel.put(try beat(step: 1, metrics: ["loss": 0.5]), arrivedAt: .seconds(1))
        channel.put(try beat(step: 2), arrivedAt: .seconds(2))
        let folded = try #require(await channel.next())
        guard case .heartbeat(let pending) = folded else {
            Issue.record("expected a heartbeat, got \(folded)")
            return
        }
        #expect(pending.heartbeat.step == 2 && pending.arrivedAt == .seconds(2))
        #expect(pending.heartbeat.metrics == ["loss": 0.5], "an empty map means nothing new")
        channel.put(try beat(step: 3, metrics: ["loss": 0.4]), arrivedAt: .seconds(3))
        channel.put(try beat(step: 4, metrics: ["loss": 0.3]), arrivedAt: .seconds(4))
        guard case .heartbeat(let latest) = try await channel.next() else {
            Issue.record("expected a heartbeat")
            return
        }
        #expect(latest.heartbeat.step == 4 && latest.heartbeat.metrics == ["loss": 0.3])
        // An arrival stamped earlier than the one it folds into does not move the arrival back.
        channel.put(try beat(step: 5), arrivedAt: .seconds(6))
        channel.put(try beat(step: 6), arrivedAt: .seconds(5))
        #expect(try await take(channel) == "heartbeat 6 at 6.0 seconds")
    }

    @Test("a worker that reads too slowly keeps the newest 16 updates")
    func boundedUpdates() async throws {
        let channel = SessionChannel()
        for epoch in 1...20 { channel.send(try view(epoch: UInt64(epoch))) }
        channel.finish()
        var taken: [String] = []
        while let next = try await take(channel) { taken.append(next) }
        #expect(taken == (5...20).map { "update \($0)" })
    }

    @Test(
        "closing lets the queued updates out, then ends with the first reason; later sends and heartbeats are dropped")
    func closing() async throws {
        let channel = SessionChannel()
        channel.send(try view(epoch: 1))
        channel.put(try beat(step: 1), arrivedAt: .seconds(1))
        channel.close(reason: "replaced")
        channel.close(reason: "shutting down")
        channel.send(try view(epoch: 2))
        channel.put(try beat(step: 2), arrivedAt: .seconds(2))
        #expect(try await take(channel) == "update 1")
        #expect(try await take(channel) == nil, "the coordinator ended the stream: its heartbeat is not handed on")
        #expect(channel.closeReason == "replaced")
    }

    @Test("the reader's end: what arrived before it is taken first, then its error or the clean end")
    func readerEnds() async throws {
        let failed = SessionChannel()
        failed.put(try beat(step: 1), arrivedAt: .seconds(1))
        failed.readerEnded(CoreError.invalid("kind", "must be a heartbeat"))
        #expect(try await take(failed) == "heartbeat 1 at 1.0 seconds")
        await #expect(throws: CoreError.self) { try await failed.next() }

        let clean = SessionChannel()
        clean.readerEnded(nil)
        #expect(try await take(clean) == nil)
        #expect(clean.closeReason == nil)
    }

    @Test("the serving task waits for what comes next, and a cancelled wait ends it")
    func waiting() async throws {
        let channel = SessionChannel()
        let serving = Task { try await take(channel) }
        try await Task.sleep(for: .milliseconds(50))
        channel.send(try view(epoch: 3))
        #expect(try await serving.value == "update 3")

        let cancelled = Task { try await take(channel) }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        #expect(try await cancelled.value == nil)

        // A cancelled serving task's call is gone: nothing more is handed on or written.
        channel.put(try beat(step: 1), arrivedAt: .seconds(1))
        channel.send(try view(epoch: 4))
        let gone = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await take(channel)
        }
        #expect(try await gone.value == nil)
    }
}

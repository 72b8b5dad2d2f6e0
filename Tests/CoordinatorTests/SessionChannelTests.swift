import RuntimeCore
import RuntimeProto
import Synchronization
import Testing

@testable import Coordinator

@Suite(
    "SessionChannel: one session stream between its reader, the engine and the task that serves it",
    .timeLimit(.minutes(3)))
struct SessionChannelTests {
    func beat(step: Int64, metrics: [String: Double] = [:]) throws -> ValidatedHeartbeat {
        try ValidatedHeartbeat(
            .with {
                $0.workerID = "w-1"
                $0.step = step
                $0.metrics = metrics
            })
    }

    func view(epoch: UInt64, kind: SessionUpdate.Kind = .push) throws -> SessionUpdate {
        SessionUpdate(
            kind: kind,
            view: MembershipView(
                taskID: try TaskID("t"), rank: 0, worldSize: 1, epoch: epoch, command: .proceed, health: .healthy))
    }

    /// The serving task's next update, as something comparable (its epoch), and whether the call handed the waiting
    /// heartbeat to the engine (the update the call before returned having been written).
    func next(_ channel: SessionChannel) async throws -> (String?, handedOff: Bool) {
        let handed = Mutex(false)
        let update = try await channel.next { handed.withLock { $0 = true } }
        return (update.map { "update \($0.view.epoch)" }, handed.withLock { $0 })
    }

    /// What the engine takes, as something comparable: the heartbeat's step and arrival.
    func take(_ channel: SessionChannel) -> String? {
        channel.take().map { pending, _ in "heartbeat \(pending.heartbeat.step) at \(pending.arrivedAt)" }
    }

    /// What the engine takes once the serving task (running elsewhere) hands it over: waits up to 60 s (a busy CI
    /// machine running suites in parallel has left a task unscheduled for more than 5 s).
    func eventuallyTake(_ channel: SessionChannel) async -> String? {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if let taken = take(channel) { return taken }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return nil
    }

    @Test("a heartbeat goes to the engine once the updates queued before it are written, one at a time")
    func heartbeatsWaitForUpdates() async throws {
        let channel = SessionChannel()
        #expect(channel.put(try beat(step: 1), arrivedAt: .seconds(1)), "nothing queued: handed at once")
        #expect(take(channel) == "heartbeat 1 at 1.0 seconds")
        // While the engine has it, the next one waits (and then the updates queued before it are written).
        #expect(!channel.put(try beat(step: 2), arrivedAt: .seconds(2)))
        #expect(take(channel) == nil, "not handed, so not taken")
        channel.send(try view(epoch: 7))
        #expect(!channel.done(acknowledging: try view(epoch: 8, kind: .heartbeatAck)), "updates wait to be written")
        #expect(try await next(channel) == ("update 7", false))
        #expect(try await next(channel) == ("update 8", false))
        #expect(take(channel) == nil, "the last update is being written")
        // The serving task asks for the next update once the last one is written: the heartbeat goes then.
        let serving = Task { try await next(channel) }
        #expect(await eventuallyTake(channel) == "heartbeat 2 at 2.0 seconds")
        #expect(!channel.done(acknowledging: try view(epoch: 9, kind: .heartbeatAck)))
        #expect(try await serving.value == ("update 9", true))
        // Done without an acknowledgement (its view could not be made durable), with one waiting: handed on at once.
        #expect(channel.put(try beat(step: 3), arrivedAt: .seconds(3)) == false, "the update 9 is being written")
        let waiting = Task { try await next(channel) }
        #expect(await eventuallyTake(channel) == "heartbeat 3 at 3.0 seconds")
        #expect(!channel.put(try beat(step: 4), arrivedAt: .seconds(4)))
        #expect(channel.done(acknowledging: nil))
        #expect(take(channel) == "heartbeat 4 at 4.0 seconds")
        channel.close(reason: "test over")
        #expect(try await waiting.value == (nil, true))
    }

    @Test("heartbeats the engine has not taken fold into one: the latest step and arrival, the latest metrics")
    func heartbeatsFold() async throws {
        let channel = SessionChannel()
        #expect(channel.put(try beat(step: 1, metrics: ["loss": 0.5]), arrivedAt: .seconds(1)))
        #expect(!channel.put(try beat(step: 2), arrivedAt: .seconds(2)), "handed already: folded into it")
        let (folded, token) = try #require(channel.take())
        #expect(token == nil, "not attached yet")
        #expect(folded.heartbeat.step == 2 && folded.arrivedAt == .seconds(2))
        #expect(folded.heartbeat.metrics == ["loss": 0.5], "an empty map means nothing new")
        #expect(!channel.put(try beat(step: 3, metrics: ["loss": 0.4]), arrivedAt: .seconds(3)))
        #expect(!channel.put(try beat(step: 4, metrics: ["loss": 0.3]), arrivedAt: .seconds(4)))
        #expect(channel.done(acknowledging: nil))
        let latest = try #require(channel.take()).0
        #expect(latest.heartbeat.step == 4 && latest.heartbeat.metrics == ["loss": 0.3])
        // An arrival stamped earlier than the one it folds into does not move the arrival back.
        #expect(!channel.put(try beat(step: 5), arrivedAt: .seconds(6)))
        #expect(!channel.put(try beat(step: 6), arrivedAt: .seconds(5)))
        #expect(channel.done(acknowledging: nil))
        #expect(take(channel) == "heartbeat 6 at 6.0 seconds")
    }

    @Test("a worker that reads too slowly keeps the newest 16 updates")
    func boundedUpdates() async throws {
        let channel = SessionChannel()
        for epoch in 1...19 { channel.send(try view(epoch: UInt64(epoch))) }
        #expect(channel.put(try beat(step: 1), arrivedAt: .seconds(1)) == false)
        channel.send(try view(epoch: 20))
        channel.close(reason: "replaced")
        var taken: [String] = []
        while let next = try await next(channel).0 { taken.append(next) }
        #expect(taken == (5...20).map { "update \($0)" })
        #expect(take(channel) == nil, "finished: its heartbeat is not handed on")
    }

    @Test(
        "closing lets the queued updates out, then ends with the first reason; later sends and heartbeats are dropped")
    func closing() async throws {
        let channel = SessionChannel()
        channel.send(try view(epoch: 1))
        #expect(!channel.put(try beat(step: 1), arrivedAt: .seconds(1)))
        channel.close(reason: "replaced")
        channel.close(reason: "shutting down")
        channel.send(try view(epoch: 2))
        #expect(!channel.put(try beat(step: 2), arrivedAt: .seconds(2)))
        #expect(try await next(channel) == ("update 1", false), "the stream ended: its heartbeat is not handed on")
        #expect(try await next(channel).0 == nil)
        #expect(take(channel) == nil)
        #expect(channel.closeReason == "replaced")
    }

    @Test("the engine's refusal ends the stream after what is queued; a later acknowledgement is dropped")
    func refusal() async throws {
        let channel = SessionChannel()
        #expect(channel.put(try beat(step: 1), arrivedAt: .seconds(1)))
        #expect(take(channel) != nil)
        channel.send(try view(epoch: 1))
        channel.refuse(CoreError(.notFound, "worker w-1 is not registered"))
        #expect(!channel.done(acknowledging: try view(epoch: 2, kind: .heartbeatAck)))
        #expect(try await next(channel).0 == "update 1")
        #expect(try await next(channel).0 == nil)
        #expect(channel.refusal is CoreError && channel.closeReason == nil)
    }

    @Test("a stream that ends while its heartbeat waits in the engine's inbox is not taken; nor is its next")
    func endedInTheInbox() async throws {
        let channel = SessionChannel()
        #expect(channel.put(try beat(step: 1), arrivedAt: .seconds(1)))
        #expect(channel.served() == nil)
        #expect(take(channel) == nil)
        #expect(!channel.put(try beat(step: 2), arrivedAt: .seconds(2)))
        #expect(take(channel) == nil)
    }

    @Test("the reader's end: what arrived before it is answered first, then its error or the clean end")
    func readerEnds() async throws {
        let failed = SessionChannel()
        #expect(failed.put(try beat(step: 1), arrivedAt: .seconds(1)))
        failed.readerEnded(CoreError.invalid("kind", "must be a heartbeat"))
        // The serving task waits for the engine's answer to the heartbeat before the error.
        let serving = Task { try await next(failed).0 }
        try await Task.sleep(for: .milliseconds(50))
        #expect(take(failed) == "heartbeat 1 at 1.0 seconds")
        #expect(!failed.done(acknowledging: try view(epoch: 1, kind: .heartbeatAck)))
        #expect(try await serving.value == "update 1")
        await #expect(throws: CoreError.self) { try await failed.next {} }

        let clean = SessionChannel()
        clean.readerEnded(nil)
        #expect(try await next(clean).0 == nil)
        #expect(clean.closeReason == nil)

        // A worker that closes its side right after a heartbeat gets its acknowledgement before the stream ends.
        let closing = SessionChannel()
        #expect(closing.put(try beat(step: 1), arrivedAt: .seconds(1)))
        #expect(take(closing) != nil)
        closing.readerEnded(nil)
        let ending = Task { try await next(closing).0 }
        try await Task.sleep(for: .milliseconds(50))
        #expect(!closing.done(acknowledging: try view(epoch: 5, kind: .heartbeatAck)))
        #expect(try await ending.value == "update 5")
        #expect(try await next(closing).0 == nil)
    }

    @Test("the engine's attachment is undone by whichever of it and the serving task comes second")
    func attachment() throws {
        let worker = try WorkerID("w-1")
        let attachedFirst = SessionChannel()
        #expect(attachedFirst.put(try beat(step: 1), arrivedAt: .seconds(1)))
        #expect(try #require(attachedFirst.take()).1 == nil)
        #expect(attachedFirst.attach(worker, token: 7))
        #expect(!attachedFirst.done(acknowledging: nil))
        #expect(attachedFirst.put(try beat(step: 2), arrivedAt: .seconds(2)))
        #expect(try #require(attachedFirst.take()).1 == 7, "the engine gets the token with the next heartbeat")
        #expect(attachedFirst.served()?.token == 7, "the serving task detaches it")

        let servedFirst = SessionChannel()
        #expect(servedFirst.served() == nil)
        #expect(!servedFirst.attach(worker, token: 8), "the engine detaches it")
    }

    @Test("the serving task waits for what comes next, and a cancelled wait ends it")
    func waiting() async throws {
        let channel = SessionChannel()
        let serving = Task { try await next(channel).0 }
        try await Task.sleep(for: .milliseconds(50))
        // A heartbeat does not wake the serving task: it goes to the engine, whose acknowledgement does.
        #expect(channel.put(try beat(step: 1), arrivedAt: .seconds(1)))
        #expect(take(channel) != nil)
        #expect(!channel.done(acknowledging: try view(epoch: 3, kind: .heartbeatAck)))
        #expect(try await serving.value == "update 3")

        let cancelled = Task { try await next(channel).0 }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        #expect(try await cancelled.value == nil)

        // A cancelled serving task's call is gone: nothing more is written.
        channel.send(try view(epoch: 4))
        let gone = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await next(channel).0
        }
        #expect(try await gone.value == nil)
    }
}

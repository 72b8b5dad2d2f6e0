import Foundation
import NIOCore
import RuntimeCore
import Synchronization
import Testing

@testable import Coordinator

/// The text of a frame.
func text(_ frame: EventFrame) -> String { String(buffer: frame.bytes) }

/// The ids of frames.
func ids(_ frames: [EventFrame]) -> [UInt64] { frames.map(\.id) }

@Suite("Event bus: replay buffer, coalescing, tickets, clients")
struct EventBusTests {
    @Test("the replay buffer numbers events from 1, keeps the newest, and says when a client missed too much")
    func replay() {
        var buffer = ReplayBuffer<UInt64>(capacity: 4)
        #expect(buffer.nextID == 1 && buffer.lastID == 0)
        guard case .replay(let none) = buffer.resume(after: 0), none.isEmpty else {
            Issue.record("an empty buffer resumes from 0 with nothing")
            return
        }
        if case .replay = buffer.resume(after: 1) { Issue.record("id 1 was never handed out: reset") }
        for id in 1...6 as ClosedRange<UInt64> {
            #expect(buffer.nextID == id)
            buffer.append(id * 10)
        }
        #expect(buffer.lastID == 6 && buffer.oldestID == 3)
        for (since, expected) in [(2, [30, 40, 50, 60]), (4, [50, 60]), (6, [])] as [(UInt64, [UInt64])] {
            guard case .replay(let missed) = buffer.resume(after: since) else {
                Issue.record("since \(since) is still covered")
                continue
            }
            #expect(missed == expected, "since \(since)")
        }
        for since in [0, 1, 7, 1000] as [UInt64] {
            if case .replay = buffer.resume(after: since) { Issue.record("since \(since) must reset") }
        }
    }

    @Test("table: every (capacity, events, since) resumes exactly the missing ids or resets", arguments: 1...6)
    func replayTable(capacity: Int) {
        for count in 0...15 {
            var buffer = ReplayBuffer<UInt64>(capacity: capacity)
            for _ in 0..<count { buffer.append(buffer.nextID) }
            for since in 0...(UInt64(count) + 2) {
                let oldest = UInt64(max(1, count - capacity + 1))
                let covered = since <= UInt64(count) && since + 1 >= oldest
                switch buffer.resume(after: since) {
                case .replay(let missed):
                    #expect(covered)
                    #expect(missed == Array(stride(from: since + 1, through: UInt64(count), by: 1)))
                case .reset:
                    #expect(!covered, "capacity \(capacity), \(count) events, since \(since)")
                }
            }
        }
    }

    @Test("coalescing: at most one emission per key per interval, the latest state, nothing lost")
    func coalescing() {
        var coalescer = Coalescer<String>(interval: .milliseconds(500))
        coalescer.mark("a")
        coalescer.mark("a")
        coalescer.mark("b")
        #expect(Set(coalescer.due(now: .seconds(10))) == ["a", "b"])
        #expect(coalescer.due(now: .seconds(10)).isEmpty && coalescer.isEmpty)
        coalescer.mark("a")
        #expect(coalescer.due(now: .milliseconds(10_200)).isEmpty, "a was emitted 200 ms ago: it waits")
        #expect(!coalescer.isEmpty)
        #expect(coalescer.due(now: .milliseconds(10_499)).isEmpty)
        #expect(coalescer.due(now: .milliseconds(10_500)) == ["a"], "due once the interval passed")
        coalescer.mark("c")
        #expect(coalescer.due(now: .milliseconds(10_600)) == ["c"], "a key not emitted recently goes at once")
        coalescer.mark("c")
        coalescer.forget("c")
        #expect(coalescer.due(now: .seconds(20)).isEmpty, "a forgotten key is not emitted")
    }

    @Test("coalescing, simulated: a key marked every 10 ms for 10 s is emitted at most twice a second")
    func coalescingRate() {
        var coalescer = Coalescer<Int>(interval: .milliseconds(500))
        var emissions: [Int: [Duration]] = [:]
        for tick in 0..<1000 {
            let now = Duration.milliseconds(tick * 10)
            coalescer.mark(tick % 3)
            // The engine flushes every tick (every 50 ms here).
            if tick % 5 == 0 { for key in coalescer.due(now: now) { emissions[key, default: []].append(now) } }
        }
        for (key, times) in emissions {
            #expect(times.count >= 15, "key \(key) kept being emitted: \(times.count)")
            for (earlier, later) in zip(times, times.dropFirst()) {
                #expect(later - earlier >= .milliseconds(500), "key \(key): \(earlier) then \(later)")
            }
        }
    }

    @Test("metrics events: 2 a second per worker up to 500 workers, then 1,000 a second in all")
    func metricsBudget() {
        #expect(LiveState.metricsInterval(workers: 0) == .milliseconds(500))
        #expect(LiveState.metricsInterval(workers: 500) == .milliseconds(500))
        #expect(LiveState.metricsInterval(workers: 10_000) == .seconds(10))
        // 10,000 workers each marked at every 250 ms tick for 60 s, each tick taking its share (250): no burst, the
        // whole stream within the budget, and every worker's metrics still go out.
        var coalescer = Coalescer<Int>(interval: LiveState.metricsInterval(workers: 10_000))
        var emissions: [Int: Int] = [:]
        var busiest = 0
        for tick in 0..<240 {
            for worker in 0..<10_000 { coalescer.mark(worker) }
            let due = coalescer.due(now: .milliseconds(tick * 250), limit: 250)
            busiest = max(busiest, due.count)
            for worker in due { emissions[worker, default: 0] += 1 }
        }
        let total = emissions.values.reduce(0, +)
        #expect(busiest <= 250 && total <= 60 * LiveState.metricsEventsPerSecond, "\(total) events in 60 s")
        #expect(emissions.count == 10_000, "only \(emissions.count) of 10,000 workers had an event")
        #expect(emissions.values.allSatisfy { $0 >= 5 }, "a worker starved: \(emissions.values.min() ?? 0) events")
    }

    @Test("tickets: valid for their lifetime, then not; unknown ones never; bounded")
    func tickets() throws {
        var tickets = EventTickets(lifetime: .seconds(60))
        try tickets.issue("abc", now: .seconds(100))
        #expect(tickets.isValid("abc", now: .seconds(100)))
        #expect(tickets.isValid("abc", now: .seconds(159)))
        #expect(!tickets.isValid("abc", now: .seconds(160)))
        #expect(!tickets.isValid("abd", now: .seconds(100)))
        for index in 0..<EventTickets.maxLive { try tickets.issue("t\(index)", now: .seconds(200)) }
        let full = #expect(throws: CoreError.self) { try tickets.issue("more", now: .seconds(259)) }
        #expect(full?.code == .resourceExhausted, "abc expired and made room, then 10,000 are live")
        try tickets.issue("later", now: .seconds(260))
        #expect(tickets.isValid("later", now: .seconds(260)), "expired tickets make room")
    }

    @Test("publish: each client gets every event after it connected, in order, with its id and type")
    func publish() async throws {
        let bus = EventBus()
        bus.publish(.task) { ["before": 1] }
        let subscription = try #require(bus.subscribe(since: nil) {})
        #expect(subscription.lastEventID == 1)
        guard case .replay(let replayed) = subscription.start, replayed.isEmpty else {
            Issue.record("no since: nothing replayed")
            return
        }
        #expect(bus.hasClients && bus.clients == 1)
        for index in 1...3 { bus.publish(.log) { ["index": index] } }
        var frames: [EventFrame] = []
        for await item in subscription.items {
            if case .frame(let frame) = item { frames.append(frame) }
            if frames.count == 3 { break }
        }
        #expect(ids(frames) == [2, 3, 4])
        #expect(text(frames[0]) == "id: 2\nevent: log\ndata: {\"index\":1}\n\n")
        bus.unsubscribe(subscription.id)
        #expect(!bus.hasClients)
    }

    @Test("a client resuming with since gets what it missed, or a reset when the buffer passed it")
    func resume() throws {
        let bus = EventBus(configuration: .init(replayCapacity: 3))
        for index in 1...5 { bus.publish(.log) { ["index": index] } }
        let resumed = try #require(bus.subscribe(since: 3) {})
        guard case .replay(let frames) = resumed.start else {
            Issue.record("since 3 is covered by the last 3 events")
            return
        }
        #expect(ids(frames) == [4, 5])
        let tooOld = try #require(bus.subscribe(since: 1) {})
        guard case .reset(let reason) = tooOld.start else {
            Issue.record("since 1: events 2 is gone")
            return
        }
        #expect(reason.contains("no longer buffered") && reason.contains("GET /api/dashboard"))
        let otherRun = try #require(bus.subscribe(since: 99) {})
        guard case .reset(let why) = otherRun.start else {
            Issue.record("since 99 was never handed out")
            return
        }
        #expect(why.contains("not from this run"))
    }

    @Test("a client whose queue is full is disconnected at once; the others keep receiving; the engine never waits")
    func slowClient() async throws {
        let metrics = CoordinatorMetrics()
        let bus = EventBus(configuration: .init(clientQueue: 8), metrics: metrics)
        let disconnected = Counter()
        let slow = try #require(bus.subscribe(since: nil) { disconnected.add() })
        let fast = try #require(bus.subscribe(since: nil) {})
        let received = Collected()
        let reader = Task {
            for await item in fast.items {
                if case .frame(let frame) = item { received.append(frame.id) }
            }
        }
        // One at a time, so that the fast reader (a task like any other here) never has 8 events queued.
        func publish(_ index: Int) async throws {
            bus.publish(.log) { ["index": index] }
            try await waitUntil { received.ids.count == index }
        }
        // The slow client reads nothing: its 9th event does not fit.
        for index in 1...8 { try await publish(index) }
        #expect(disconnected.value == 0 && bus.clients == 2)
        try await publish(9)
        #expect(disconnected.value == 1, "disconnected when its queue overflowed")
        #expect(bus.clients == 1)
        #expect(metrics.prometheusText().contains("dtr_event_clients_dropped_total 1"))
        // The slow client's stream ends after what was queued: it never gets event 9 or later.
        var slowIDs: [UInt64] = []
        for await item in slow.items { if case .frame(let frame) = item { slowIDs.append(frame.id) } }
        #expect(slowIDs == Array(1...8))
        for index in 10...100 { try await publish(index) }
        #expect(received.ids == Array(1...100))
        await bus.close(grace: .seconds(1))
        _ = await reader.value
    }

    @Test("close: every stream ends after its queued events; new clients are refused; stuck ones are disconnected")
    func close() async throws {
        let bus = EventBus()
        let stuckDisconnected = Counter()
        let draining = try #require(bus.subscribe(since: nil) {})
        let stuck = try #require(bus.subscribe(since: nil) { stuckDisconnected.add() })
        bus.publish(.log) { ["last": true] }
        let drained = Task {
            var count = 0
            for await item in draining.items { if case .frame = item { count += 1 } }
            bus.unsubscribe(draining.id)
            return count
        }
        // `stuck` never reads (its writer is blocked on a client that stopped reading): close waits `grace`, then
        // closes its connection.
        let started = ContinuousClock.now
        await bus.close(grace: .milliseconds(300))
        #expect(ContinuousClock.now - started >= .milliseconds(300))
        #expect(await drained.value == 1, "the queued event went out before the end")
        #expect(stuckDisconnected.value == 1)
        #expect(bus.subscribe(since: nil) {} == nil, "closed: no new streams")
        bus.publish(.log) { ["after": true] }
        #expect(bus.lastEventID == 1, "nothing is published after close")
        _ = stuck
    }

    @Test(
        "the bus service: keep-alives every interval, log entries at info and above as events; stopped, it ends streams"
    )
    func service() async throws {
        let bus = EventBus(configuration: .init(keepAliveInterval: .milliseconds(20)))
        let logs = LogBuffer()
        let observer = logs.observe { entry in
            guard entry.level >= .info else { return }
            bus.publish(.log) { LogsBody.Entry(entry) }
        }
        let subscription = try #require(bus.subscribe(since: nil) {})
        let running = Task { await EventBusService(bus: bus, logs: logs, observer: observer).run() }
        logs.append(timestamp: Date(), level: .debug, label: "dtr", message: "not an event", metadata: [:])
        logs.append(timestamp: Date(), level: .warning, label: "dtr", message: "an event", metadata: ["a": "b"])
        var keepAlives = 0
        var frames: [EventFrame] = []
        for await item in subscription.items {
            switch item {
            case .keepAlive: keepAlives += 1
            case .frame(let frame): frames.append(frame)
            }
            if keepAlives == 2 { break }
        }
        #expect(frames.map(\.type) == [.log])
        #expect(text(frames[0]).contains(#""message":"an event""#) && text(frames[0]).contains(#""sequence":2"#))
        running.cancel()
        await running.value
        for await _ in subscription.items {}  // ends: the bus closed it
        #expect(bus.subscribe(since: nil) {} == nil, "stopped: no new streams")
        logs.append(timestamp: Date(), level: .error, label: "dtr", message: "after", metadata: [:])
        #expect(bus.lastEventID == 1, "nothing is published once the bus closed")
    }

    @Test("keep-alives reach every client")
    func keepAlive() async throws {
        let bus = EventBus()
        let subscription = try #require(bus.subscribe(since: nil) {})
        bus.keepAlive()
        var iterator = subscription.items.makeAsyncIterator()
        guard case .keepAlive = await iterator.next() else {
            Issue.record("a keep-alive was queued")
            return
        }
    }

    @Test("frames are encoded once, lazily, as one line of JSON in the API's style")
    func frames() {
        let calls = Counter()
        let frame = EventFrame(id: 7, type: .datasetProgress) {
            calls.add()
            return ["b": "two\nlines", "a": "x/y"]
        }
        #expect(calls.value == 0, "nothing is encoded until a client writes the frame")
        let expected = "id: 7\nevent: dataset_progress\ndata: {\"a\":\"x/y\",\"b\":\"two\\nlines\"}\n\n"
        #expect(text(frame) == expected)
        #expect(text(frame) == expected)
        #expect(calls.value == 1)
        #expect(
            String(buffer: EventFrame.render(id: 0, type: .hello, data: Data("{}".utf8)))
                == "event: hello\ndata: {}\n\n")
    }
}

/// A count that closures of several tasks add to.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)

    func add() { count.add(1, ordering: .relaxed) }

    var value: Int { count.load(ordering: .relaxed) }
}

/// Event ids collected by a reading task.
final class Collected: Sendable {
    private let collected = Mutex<[UInt64]>([])

    func append(_ id: UInt64) { collected.withLock { $0.append(id) } }

    var ids: [UInt64] { collected.withLock { $0 } }
}

/// Polls `condition` every 10 ms; throws after 30 s (generous: the machine may be busy).
func waitUntil(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while !condition() {
        guard ContinuousClock.now < deadline else { throw WaitTimedOut() }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// ``waitUntil(_:)`` gave up.
struct WaitTimedOut: Error, CustomStringConvertible {
    var description: String { "condition not met within 30 s" }
}

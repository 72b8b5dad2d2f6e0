import Testing

@testable import RuntimeCore

@Suite("Membership: joins, heartbeats, leaves")
struct MembershipTests {
    var clock = ManualClock()
    var membership = Membership()

    @Test("ranks are dense 0..n-1 in join order and every join bumps the epoch")
    mutating func denseRanks() throws {
        for (index, name) in ["a", "b", "c", "d"].enumerated() {
            let view = try membership.join(try worker(name), at: clock.now)
            #expect(view.rank == index)
            #expect(view.worldSize == index + 1)
            #expect(view.epoch == UInt64(index + 1))
            #expect(view.command == .proceed)
        }
        #expect(membership.ranks() == ["a", "b", "c", "d"])
    }

    @Test("a join persists the record and the epoch, pushes to the others and logs")
    mutating func joinDirectives() throws {
        try membership.join(try worker("a"), at: clock.now)
        let (_, directives) = try membership.onRegister(try worker("b"), now: clock.now)
        let record = WorkerRecord(
            spec: try worker("b"), joinSeq: 2, registeredAtMillis: clock.now.unixMillis, standing: .member)
        #expect(
            directives == [
                .persist(MembershipChange(upserted: [record], epochs: [.default: 2])),
                .membershipChanged(
                    .default, members: [try wid("a"), try wid("b")], epoch: 2, cause: .joined(try wid("b"), rank: 1)),
                .log(.joined(try wid("b"), .default, rank: 1, epoch: 2)),
            ])
    }

    @Test("re-registering a live worker is idempotent: same rank, same epoch, nothing to persist")
    mutating func idempotentRegister() throws {
        try membership.join(try worker("a"), at: clock.now)
        try membership.join(try worker("b"), at: clock.now)
        clock.advance(.seconds(1))
        let (view, directives) = try membership.onRegister(try worker("a"), now: clock.now)
        #expect(view.rank == 0)
        #expect(view.epoch == 2)
        #expect(directives.isEmpty)
    }

    @Test("re-registering with a new address keeps the rank and persists the new spec without an epoch bump")
    mutating func reregisterNewAddress() throws {
        try membership.join(try worker("a"), at: clock.now)
        let (view, directives) = try membership.onRegister(try worker("a", port: 7001), now: clock.now)
        #expect(view.rank == 0 && view.epoch == 1)
        guard case .persist(let change) = try #require(directives.first) else {
            Issue.record("expected a persist directive, got \(directives)")
            return
        }
        #expect(change.upserted.map(\.spec.port) == [7001])
        #expect(change.epochs.isEmpty)
    }

    @Test("a live member of one task cannot register into another")
    mutating func otherTaskRejected() throws {
        try membership.join(try worker("a", task: "job-1"), at: clock.now)
        #expect(throws: CoreError.self) { try membership.join(try worker("a", task: "job-2"), at: clock.now) }
        let error = try #require(throws: CoreError.self) {
            try membership.join(try worker("a", task: "job-2"), at: clock.now)
        }
        #expect(error.code == .failedPrecondition)
        #expect(error.message.contains("already a live member of task job-1"))
        #expect(membership.ranks(try TaskID("job-2")).isEmpty)
    }

    @Test("tasks have independent ranks and epochs")
    mutating func tasksAreIndependent() throws {
        let one = try TaskID("one")
        let two = try TaskID("two")
        try membership.join(try worker("a", task: "one"), at: clock.now)
        try membership.join(try worker("b", task: "two"), at: clock.now)
        let view = try membership.join(try worker("c", task: "one"), at: clock.now)
        #expect(view.rank == 1 && view.worldSize == 2 && view.epoch == 2)
        #expect(membership.ranks(one) == ["a", "c"])
        #expect(membership.ranks(two) == ["b"])
        #expect(membership.tasks().map(\.epoch) == [2, 1])
    }

    @Test("a heartbeat refreshes the worker and records step and metrics, without directives")
    mutating func heartbeat() throws {
        try membership.join(try worker("a"), at: clock.now)
        clock.advance(.milliseconds(900))
        let (view, directives) = try membership.onHeartbeat(
            try wid("a"), step: 42, metrics: ["loss": 0.5], now: clock.now)
        #expect(view.rank == 0 && view.command == .proceed && view.health == .healthy)
        #expect(directives.isEmpty)
        let snapshot = try #require(membership.workers(now: clock.now).first)
        #expect(snapshot.step == 42)
        #expect(snapshot.metrics == ["loss": 0.5])
        #expect(snapshot.lastHeartbeatAge == .zero)
    }

    @Test("an empty metrics map keeps the previous metrics")
    mutating func emptyMetricsKeepPrevious() throws {
        try membership.join(try worker("a"), at: clock.now)
        _ = try membership.onHeartbeat(try wid("a"), step: 1, metrics: ["loss": 0.5], now: clock.now)
        _ = try membership.onHeartbeat(try wid("a"), step: 2, metrics: [:], now: clock.now)
        #expect(membership.workers(now: clock.now).first?.metrics == ["loss": 0.5])
    }

    @Test("a heartbeat from an unknown worker is NOT_FOUND, telling it to register")
    mutating func unknownHeartbeat() throws {
        let error = try #require(throws: CoreError.self) {
            try membership.onHeartbeat(try wid("ghost"), step: 0, metrics: [:], now: clock.now)
        }
        #expect(error.code == .notFound)
        #expect(error.message.contains("call RegisterWorker"))
    }

    @Test("leaving releases the rank at once, re-densifies ranks in order and bumps the epoch")
    mutating func leave() throws {
        for name in ["a", "b", "c", "d"] { try membership.join(try worker(name), at: clock.now) }
        let (epoch, directives) = try membership.onDeregister(try wid("b"), now: clock.now)
        #expect(epoch == 5)
        #expect(membership.ranks() == ["a", "c", "d"])
        #expect(membership.view(of: try wid("c"))?.rank == 1)
        #expect(membership.view(of: try wid("b"))?.command == .rejoin)
        #expect(membership.view(of: try wid("b"))?.health == .left)
        #expect(
            directives.contains(
                .membershipChanged(
                    .default, members: [try wid("a"), try wid("c"), try wid("d")], epoch: 5,
                    cause: .left(try wid("b"), failed: false))))
        // Leaving again changes nothing.
        let again = try membership.onDeregister(try wid("b"), now: clock.now)
        #expect(again.epoch == 5 && again.directives.isEmpty)
    }

    @Test("a departed worker that heartbeats is told to rejoin; registering again gives it the next rank")
    mutating func rejoin() throws {
        for name in ["a", "b", "c"] { try membership.join(try worker(name), at: clock.now) }
        _ = try membership.onDeregister(try wid("a"), now: clock.now)
        let (view, directives) = try membership.onHeartbeat(try wid("a"), step: 0, metrics: [:], now: clock.now)
        #expect(view.command == .rejoin && view.rank == nil)
        #expect(directives.isEmpty)
        let rejoined = try membership.join(try worker("a"), at: clock.now)
        #expect(rejoined.rank == 2 && rejoined.epoch == 5)
        #expect(membership.ranks() == ["b", "c", "a"])
    }
}

@Suite("Membership limits")
struct MembershipLimitTests {
    @Test("beyond maxWorkers, new workers are refused with RESOURCE_EXHAUSTED; known ones still re-register")
    func maxWorkers() throws {
        var membership = Membership()
        let now = Moment(monotonic: .seconds(1), unixMillis: 1_800_000_000_000)
        for index in 0..<Membership.maxWorkers {
            _ = try membership.onRegister(
                WorkerSpec(
                    id: try WorkerID("w\(index)"), taskID: try TaskID("t\(index % 1000)"), host: "10.0.0.1",
                    port: 7000, gpuCount: 0, labels: [:]),
                now: now)
        }
        let spec = { (id: String) throws in
            WorkerSpec(
                id: try WorkerID(id), taskID: try TaskID("t0"), host: "10.0.0.1", port: 7000, gpuCount: 0, labels: [:])
        }
        let error = #expect(throws: CoreError.self) { try membership.onRegister(try spec("one-too-many"), now: now) }
        #expect(error?.code == .resourceExhausted)
        #expect(error?.message.hasPrefix("this coordinator already tracks 100000 workers") == true)
        #expect(try membership.onRegister(try spec("w0"), now: now).view.rank == 0, "a known worker is not refused")
    }
}

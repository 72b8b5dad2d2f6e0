import Testing

@testable import RuntimeCore

/// Failure detection by arrival: heartbeats count from when they reached the coordinator, whether or not the engine
/// got round to them (the engine records arrivals on its liveness board and hands them to every tick).
@Suite("Membership: failure detection by arrival")
struct FailureDetectorArrivalTests {
    var clock = ManualClock()
    var membership = Membership()

    func health(_ name: String) throws -> WorkerHealth? {
        membership.workers(now: clock.now).first { $0.record.spec.id.rawValue == name }?.health
    }

    @Test("a member whose heartbeats arrive while the engine is busy is never suspected; a silent one dies on time")
    mutating func arrivalsKeepAMemberAlive() throws {
        try membership.join(try worker("a"), at: clock.now)
        try membership.join(try worker("b"), at: clock.now)
        var directives: [Membership.Directive] = []
        // 10 s in which the engine handles no heartbeat at all; a's arrive every 500 ms, b is silent.
        for tick in 1...40 {
            clock.advance(.milliseconds(250))
            let arrivals = tick.isMultiple(of: 2) ? [try wid("a"): clock.now.monotonic - .milliseconds(100)] : [:]
            directives += membership.onTick(now: clock.now, arrivals: arrivals)
            #expect(try health("a") == .healthy, "tick \(tick)")
        }
        #expect(membership.ranks() == ["a"])
        #expect(directives.contains(.log(.declaredDead(try wid("b"), .default, silentFor: .seconds(5), epoch: 3))))
        let a = try wid("a")
        #expect(!directives.contains { if case .log(.suspected(let id, _, _)) = $0 { id == a } else { false } })
    }

    @Test("a heartbeat the engine handles late counts from its arrival, and never moves the last sign of life back")
    mutating func heartbeatCountsFromArrival() throws {
        try membership.join(try worker("a"), at: clock.now)
        let arrival = clock.now.monotonic + .milliseconds(500)
        clock.advance(.seconds(2))
        // Handled 1.5 s after it arrived: a has been silent for 1.5 s, not 0.
        _ = try membership.onHeartbeat(try wid("a"), step: 1, metrics: [:], arrivedAt: arrival, now: clock.now)
        clock.advance(.milliseconds(500))
        _ = membership.onTick(now: clock.now)
        #expect(try health("a") == .suspect, "2 s since the heartbeat arrived")
        // A newer arrival, then an older one handled later: the newer one stands.
        _ = membership.onSignOfLife(try wid("a"), at: clock.now.monotonic, now: clock.now)
        _ = try membership.onHeartbeat(try wid("a"), step: 2, metrics: [:], arrivedAt: arrival, now: clock.now)
        clock.advance(.milliseconds(1750))
        _ = membership.onTick(now: clock.now)
        #expect(try health("a") == .healthy)
        #expect(membership.workers(now: clock.now)[0].step == 2, "the late heartbeat's step is still recorded")
    }

    @Test("an arrival older than the suspect timeout does not make a suspect healthy")
    mutating func staleArrivalDoesNotRecover() throws {
        try membership.join(try worker("a"), at: clock.now)
        let stale = clock.now.monotonic + .milliseconds(100)
        clock.advance(.seconds(3))
        _ = membership.onTick(now: clock.now)
        #expect(try health("a") == .suspect)
        #expect(membership.onSignOfLife(try wid("a"), at: stale, now: clock.now).isEmpty)
        #expect(try health("a") == .suspect)
        let fresh = membership.onSignOfLife(try wid("a"), at: clock.now.monotonic, now: clock.now)
        #expect(fresh == [.log(.recovered(try wid("a"), .default))])
        #expect(try health("a") == .healthy)
    }

    @Test("suspects recovering by their arrivals at one tick are logged in worker order, whatever the arrivals' order")
    mutating func recoveriesInWorkerOrder() throws {
        let names = (0..<40).map { "w\(String($0, radix: 36))-\($0 * 7919 % 97)" }
        for name in names { try membership.join(try worker(name), at: clock.now) }
        clock.advance(.milliseconds(2250))
        _ = membership.onTick(now: clock.now)
        for name in names { #expect(try health(name) == .suspect) }
        clock.advance(.milliseconds(250))
        var arrivals: [WorkerID: Duration] = [:]
        for name in names.shuffled() { arrivals[try wid(name)] = clock.now.monotonic - .milliseconds(10) }
        let directives = membership.onTick(now: clock.now, arrivals: arrivals)
        let recovered = try names.sorted().map { Membership.Directive.log(.recovered(try wid($0), .default)) }
        #expect(directives == recovered)
        for name in names { #expect(try health(name) == .healthy) }
    }

    @Test("signs of life of departed or unknown workers change nothing")
    mutating func departedAndUnknownIgnored() throws {
        try membership.join(try worker("a"), at: clock.now)
        _ = try membership.onDeregister(try wid("a"), now: clock.now)
        clock.advance(.seconds(1))
        #expect(membership.onSignOfLife(try wid("a"), at: clock.now.monotonic, now: clock.now).isEmpty)
        #expect(membership.onSignOfLife(try wid("ghost"), at: clock.now.monotonic, now: clock.now).isEmpty)
        _ = membership.onTick(now: clock.now, arrivals: [try wid("a"): clock.now.monotonic])
        #expect(try health("a") == .left)
        #expect(membership.workers(now: clock.now).count == 1)
    }

    @Test("the stall rule still forgives silence while the coordinator itself was away, and arrivals during it count")
    mutating func stallRuleStillApplies() throws {
        try membership.join(try worker("quiet"), at: clock.now)
        try membership.join(try worker("heard"), at: clock.now)
        _ = membership.onTick(now: clock.now)
        // The process was paused for 10 s (no tick ran); one heartbeat of "heard" was recorded 1 s before the end.
        clock.advance(.seconds(10))
        let directives = membership.onTick(
            now: clock.now, arrivals: [try wid("heard"): clock.now.monotonic - .seconds(1)])
        #expect(directives.contains(.log(.coordinatorStalled(gap: .seconds(10)))))
        #expect(try health("quiet") == .healthy, "its silence during the stall is not its fault")
        #expect(try health("heard") == .healthy)
        #expect(membership.ranks() == ["quiet", "heard"])
        // Judged on its own silence since: "quiet" dies 5 s after the stall ended (less one tick).
        for _ in 0..<19 {
            clock.advance(.milliseconds(250))
            _ = membership.onTick(now: clock.now, arrivals: [try wid("heard"): clock.now.monotonic])
        }
        #expect(try health("quiet") == .dead)
        #expect(try health("heard") == .healthy)
    }

    @Test("a registration answered late starts the worker's silence when it is answered")
    mutating func registrationAnsweredLate() throws {
        try membership.join(try worker("a"), at: clock.now)
        // The registration's write took 3 s; the worker could not heartbeat before its answer.
        clock.advance(.seconds(3))
        _ = membership.onSignOfLife(try wid("a"), at: clock.now.monotonic, now: clock.now)
        clock.advance(.milliseconds(250))
        _ = membership.onTick(now: clock.now)
        #expect(try health("a") == .healthy)
    }
}

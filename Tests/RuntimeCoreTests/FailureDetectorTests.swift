import Testing

@testable import RuntimeCore

@Suite("Membership: failure detection")
struct FailureDetectorTests {
    var clock = ManualClock()
    var membership = Membership()

    /// Ticks every 250 ms for `duration` (the coordinator `lag` behind), collecting the directives.
    mutating func run(
        for duration: Duration, heartbeating: [String] = [], lag: Duration = .zero
    ) throws -> [Membership.Directive] {
        var directives: [Membership.Directive] = []
        var elapsed = Duration.zero
        while elapsed < duration {
            clock.advance(.milliseconds(250))
            elapsed += .milliseconds(250)
            for name in heartbeating {
                _ = try membership.onHeartbeat(try wid(name), step: 0, metrics: [:], now: clock.now)
            }
            directives += membership.onTick(now: clock.now, lag: lag)
        }
        return directives
    }

    func health(_ name: String) throws -> WorkerHealth? {
        membership.workers(now: clock.now).first { $0.record.spec.id.rawValue == name }?.health
    }

    @Test("HEALTHY -> SUSPECT after 2 s -> DEAD after 5 s of silence (defaults)")
    mutating func healthyToSuspectToDead() throws {
        try membership.join(try worker("a"), at: clock.now)
        try membership.join(try worker("b"), at: clock.now)
        _ = membership.onTick(now: clock.now)

        _ = try run(for: .milliseconds(1750), heartbeating: ["b"])
        #expect(try health("a") == .healthy)
        _ = try run(for: .milliseconds(250), heartbeating: ["b"])
        #expect(try health("a") == .suspect)
        #expect(membership.view(of: try wid("a"))?.rank == 0, "a suspect keeps its rank")

        _ = try run(for: .milliseconds(2750), heartbeating: ["b"])
        #expect(try health("a") == .suspect)
        let directives = try run(for: .milliseconds(250), heartbeating: ["b"])
        #expect(try health("a") == .dead)
        #expect(membership.ranks() == ["b"])
        #expect(
            membership.view(of: try wid("b"))
                == MembershipView(
                    taskID: .default, rank: 0, worldSize: 1, epoch: 3, command: .proceed, health: .healthy))
        #expect(directives.contains(.log(.declaredDead(try wid("a"), .default, silentFor: .seconds(5), epoch: 3))))
        let survivor = try wid("b")
        #expect(
            directives.contains { directive in
                guard case .membershipChanged(.default, let members, let epoch, _) = directive else { return false }
                return members == [survivor] && epoch == 3
            })
    }

    @Test("nextDeathDue is the earliest member's death deadline; a tick at it declares that death, none earlier")
    mutating func nextDeathDue() throws {
        #expect(membership.nextDeathDue == nil)
        _ = try membership.join(try worker("a"), at: clock.now)
        clock.advance(.milliseconds(300))
        _ = try membership.join(try worker("b"), at: clock.now)
        let aJoined = clock.now.monotonic - .milliseconds(300)
        _ = membership.onTick(now: clock.now)
        #expect(membership.nextDeathDue == aJoined + .seconds(5))
        // b heartbeats, a stays silent: a's deadline stays the earliest.
        _ = try run(for: .seconds(3), heartbeating: ["b"])
        #expect(membership.nextDeathDue == aJoined + .seconds(5))
        // Just before it nothing dies; at it, a does (not at the next regular tick).
        clock.advance(aJoined + .seconds(5) - clock.now.monotonic - .milliseconds(1))
        _ = membership.onTick(now: clock.now)
        #expect(try health("a") == .suspect)
        clock.advance(.milliseconds(1))
        _ = membership.onTick(now: clock.now)
        #expect(try health("a") == .dead)
        // Now b's, counted from its last heartbeat; nil once nobody is a member.
        let bDue = try #require(membership.nextDeathDue)
        #expect(bDue > clock.now.monotonic && bDue <= clock.now.monotonic + .seconds(5))
        _ = try membership.onDeregister(try wid("b"), now: clock.now)
        _ = membership.onTick(now: clock.now)
        #expect(membership.nextDeathDue == nil)
    }

    @Test("a coordinator running behind extends both timeouts by its lag, at most by the dead timeout")
    mutating func lagExtendsTimeouts() throws {
        try membership.join(try worker("a"), at: clock.now)
        try membership.join(try worker("b"), at: clock.now)
        _ = membership.onTick(now: clock.now)
        let joined = clock.now.monotonic

        // 2.5 s of silence with 0.6 s of lag: not suspected (2.6 s needed); the lag gone, suspected.
        _ = try run(for: .milliseconds(2500), lag: .milliseconds(600))
        #expect(try health("a") == .healthy)
        _ = membership.onTick(now: clock.now, lag: .zero)
        #expect(try health("a") == .suspect)

        // 5.5 s with 0.6 s of lag: alive, and the next death is due at the extended deadline.
        _ = try run(for: .seconds(3), lag: .milliseconds(600))
        #expect(membership.ranks() == ["a", "b"])
        #expect(membership.nextDeathDue == joined + .milliseconds(5600))

        // However far behind the coordinator claims to be, a silence of twice the dead timeout is a death.
        _ = try run(for: .milliseconds(4250), lag: .seconds(60))
        #expect(membership.ranks() == ["a", "b"])
        let directives = try run(for: .milliseconds(250), lag: .seconds(60))
        #expect(membership.ranks().isEmpty)
        #expect(directives.contains(.log(.declaredDead(try wid("a"), .default, silentFor: .seconds(10), epoch: 3))))
    }

    @Test("a suspect that heartbeats again is healthy and keeps its rank")
    mutating func suspectRecovers() throws {
        try membership.join(try worker("a"), at: clock.now)
        _ = try run(for: .seconds(3))
        #expect(try health("a") == .suspect)
        let (view, directives) = try membership.onHeartbeat(try wid("a"), step: 1, metrics: [:], now: clock.now)
        #expect(view.health == .healthy && view.rank == 0 && view.epoch == 1)
        #expect(directives == [.log(.recovered(try wid("a"), .default))])
    }

    @Test("deaths in one tick bump each task's epoch once and are persisted in one change")
    mutating func simultaneousDeaths() throws {
        for name in ["a", "b", "c", "d"] { try membership.join(try worker(name), at: clock.now) }
        try membership.join(try worker("x", task: "other"), at: clock.now)
        let directives = try run(for: .seconds(5), heartbeating: ["a", "c"])
        #expect(membership.ranks() == ["a", "c"])
        #expect(membership.view(of: try wid("c"))?.epoch == 5)
        let persists = directives.compactMap { if case .persist(let change) = $0 { change } else { nil } }
        #expect(persists.count == 1)
        #expect(Set(persists[0].upserted.map(\.spec.id.rawValue)) == ["b", "d", "x"])
        #expect(persists[0].upserted.allSatisfy { $0.standing == .dead && $0.departedAtMillis != nil })
        #expect(persists[0].epochs == [.default: 5, try TaskID("other"): 2])
    }

    @Test("a dead worker that heartbeats is told to rejoin")
    mutating func deadIsToldToRejoin() throws {
        try membership.join(try worker("a"), at: clock.now)
        _ = try run(for: .seconds(6))
        let (view, _) = try membership.onHeartbeat(try wid("a"), step: 0, metrics: [:], now: clock.now)
        #expect(view.command == .rejoin && view.health == .dead && view.rank == nil)
    }

    @Test("a stalled coordinator does not count the time it lost as the members' silence")
    mutating func stallIsNotSilence() throws {
        try membership.join(try worker("a"), at: clock.now)
        try membership.join(try worker("b"), at: clock.now)
        _ = try run(for: .seconds(3), heartbeating: ["a"])
        #expect(try health("b") == .suspect)

        // 30 s without a tick: far beyond the dead timeout.
        clock.advance(.seconds(30))
        let directives = membership.onTick(now: clock.now)
        #expect(directives == [.log(.coordinatorStalled(gap: .seconds(30)))])
        #expect(membership.ranks() == ["a", "b"], "nobody is declared dead for the coordinator's absence")

        // Each keeps its own silence: a was heard 0.25 s before the stall, b 3 s before.
        _ = try run(for: .milliseconds(1500))
        #expect(try health("a") == .healthy)
        _ = try run(for: .milliseconds(250))
        #expect(try health("a") == .suspect)
        #expect(membership.ranks() == ["a"], "b reached 5 s of its own silence")
        _ = try run(for: .milliseconds(2750))
        #expect(membership.ranks() == ["a"])
        _ = try run(for: .milliseconds(250))
        #expect(membership.ranks().isEmpty)
    }

    @Test("departed workers are forgotten after the retention")
    mutating func retention() throws {
        membership = Membership(config: try MembershipConfig(departedRetention: .seconds(60)))
        try membership.join(try worker("a"), at: clock.now)
        try membership.join(try worker("b"), at: clock.now)
        _ = try membership.onDeregister(try wid("a"), now: clock.now)
        _ = try run(for: .milliseconds(59_750), heartbeating: ["b"])
        #expect(try health("a") == .left)
        let directives = try run(for: .milliseconds(250), heartbeating: ["b"])
        #expect(try health("a") == nil)
        #expect(directives.contains(.persist(MembershipChange(forgotten: [try wid("a")]))))
        #expect(throws: CoreError.self) {
            try membership.onHeartbeat(try wid("a"), step: 0, metrics: [:], now: clock.now)
        }
    }
}

@Suite("Membership: restart")
struct RestartTests {
    @Test("restored members keep their ranks and epochs and get one full dead timeout of grace")
    func restartGrace() throws {
        var clock = ManualClock()
        var before = Membership()
        var records: [WorkerRecord] = []
        var epochs: [TaskID: UInt64] = [:]
        func collect(_ directives: [Membership.Directive]) {
            for case .persist(let change) in directives {
                for record in change.upserted {
                    records.removeAll { $0.spec.id == record.spec.id }
                    records.append(record)
                }
                epochs.merge(change.epochs) { $1 }
            }
        }
        for name in ["a", "b", "c"] { collect(try before.onRegister(try worker(name), now: clock.now).directives) }
        collect(try before.onDeregister(try wid("b"), now: clock.now).directives)

        // The coordinator was down for a minute: far longer than the dead timeout.
        clock.advance(.seconds(60))
        var after = Membership(restoring: records.shuffled(), epochs: epochs, now: clock.now)
        #expect(after.ranks() == ["a", "c"])
        #expect(after.view(of: try wid("c"))?.epoch == 4)
        #expect(after.view(of: try wid("b"))?.command == .rejoin)

        for _ in 0..<49 {
            clock.advance(.milliseconds(100))
            #expect(after.onTick(now: clock.now).allSatisfy { if case .log = $0 { true } else { false } })
        }
        #expect(after.ranks() == ["a", "c"], "4.9 s after the restart nobody is dead yet")
        _ = try after.onHeartbeat(try wid("a"), step: 0, metrics: [:], now: clock.now)
        clock.advance(.milliseconds(100))
        _ = after.onTick(now: clock.now)
        #expect(after.ranks() == ["a"], "c never heartbeated after the restart: dead after its grace")
        let joined = try after.onRegister(try worker("d"), now: clock.now).view
        #expect(joined.rank == 1 && joined.epoch == 6, "join order continues after the restored ones")
    }

    /// `heardByArrival`: a is heard through its arrival on the liveness board only, not a heartbeat the engine handled.
    @Test(
        "restored members are not suspected before they are heard from again, within the grace; after it as before",
        arguments: [false, true])
    func restoredUnheardNotSuspected(heardByArrival: Bool) throws {
        var clock = ManualClock()
        var before = Membership()
        var records: [WorkerRecord] = []
        var epochs: [TaskID: UInt64] = [:]
        for name in ["a", "b", "c"] {
            for case .persist(let change) in try before.onRegister(try worker(name), now: clock.now).directives {
                records += change.upserted
                epochs.merge(change.epochs) { $1 }
            }
        }
        clock.advance(.seconds(60))
        var after = Membership(restoring: records, epochs: epochs, now: clock.now)
        func health(_ name: String) throws -> WorkerHealth? {
            after.workers(now: clock.now).first { $0.record.spec.id.rawValue == name }?.health
        }
        var logged: [Membership.Directive] = []
        // a heartbeats at once and then falls silent; b heartbeats throughout; c is never heard from.
        if heardByArrival {
            _ = after.onTick(now: clock.now, arrivals: [try wid("a"): clock.now.monotonic])
        } else {
            _ = try after.onHeartbeat(try wid("a"), step: 0, metrics: [:], now: clock.now)
        }
        for _ in 0..<49 {
            clock.advance(.milliseconds(100))
            _ = try after.onHeartbeat(try wid("b"), step: 0, metrics: [:], now: clock.now)
            logged += after.onTick(now: clock.now)
        }
        #expect(try health("a") == .suspect, "a was heard after the restart: judged on its own silence")
        #expect(try health("c") == .healthy, "4.9 s after the restart c is not suspected: the coordinator was away")
        let suspected = logged.compactMap { directive -> String? in
            if case .log(.suspected(let id, _, _)) = directive { id.rawValue } else { nil }
        }
        #expect(suspected == ["a"])
        clock.advance(.milliseconds(100))
        _ = try after.onHeartbeat(try wid("b"), step: 0, metrics: [:], now: clock.now)
        _ = after.onTick(now: clock.now)
        #expect(after.ranks() == ["b"], "a and c are dead at the end of the grace")
        #expect(after.restoredUnheard.isEmpty && after.restoredAt == nil, "the grace's bookkeeping is dropped")

        // A member heard after the restart and then silent, once the grace is over, is suspected as usual.
        for _ in 0..<20 {
            clock.advance(.milliseconds(100))
            _ = after.onTick(now: clock.now)
        }
        #expect(try health("b") == .suspect)
    }
}

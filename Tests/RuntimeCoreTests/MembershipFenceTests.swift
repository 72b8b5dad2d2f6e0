import Testing

@testable import RuntimeCore

@Suite("Membership fencing: the one rule for calls that carry a membership epoch")
struct MembershipFenceTests {
    var clock = ManualClock()
    var membership = Membership()

    @Test("a member's calls pass at its task's epoch; an unknown worker and a non-member are told so, with reasons")
    mutating func members() throws {
        try membership.join(try worker("a"), at: clock.now)
        try membership.join(try worker("b"), at: clock.now)
        let b = try membership.member(try wid("b"), seenEpoch: 2, rule: .current)
        #expect(b == Member(id: try wid("b"), task: .default, rank: 1, worldSize: 2, epoch: 2))

        let unknown = #expect(throws: CoreError.self) { try membership.member(try wid("ghost")) }
        #expect(unknown?.code == .notFound && unknown?.reason == .unknownWorker)

        clock.advance(.seconds(1))
        _ = try membership.onDeregister(try wid("a"), now: clock.now)
        let left = #expect(throws: CoreError.self) { try membership.member(try wid("a"), seenEpoch: 3) }
        #expect(left?.code == .failedPrecondition && left?.reason == .notAMember)
        #expect(left?.message.hasSuffix("register again (the Python SDK does this automatically)") == true)
        #expect(try membership.member(try wid("b")).rank == 0, "ranks re-densified")
    }

    @Test("the epoch: never ahead; under .current never behind (STALE_EPOCH names the current one); .notAhead lags")
    mutating func epochs() throws {
        for name in ["a", "b", "c"] { try membership.join(try worker(name), at: clock.now) }
        let a = try wid("a")
        for seen: UInt64 in 0...3 {
            _ = try membership.member(a, seenEpoch: seen, rule: .notAhead)
        }
        let ahead = #expect(throws: CoreError.self) { try membership.member(a, seenEpoch: 4, rule: .notAhead) }
        #expect(ahead?.code == .invalidArgument && ahead?.reason == .invalidArgument)
        #expect(
            ahead?.message
                == "membership_epoch must not be ahead of task default's current membership epoch 3 (got 4)")

        let stale = #expect(throws: CoreError.self) {
            try membership.member(a, seenEpoch: 2, rule: .current, advice: "arrive again")
        }
        #expect(stale?.code == .failedPrecondition && stale?.reason == .staleEpoch)
        #expect(stale?.details == ErrorDetails(membershipEpoch: 3))
        #expect(
            stale?.message
                == "membership_epoch 2 is stale: task default is at 3 (its membership changed since); arrive again")
        _ = try membership.member(a, seenEpoch: 3, rule: .current)
    }

    @Test("barriers apply the same rule: a stale arrival and a non-member get the same errors as every other call")
    mutating func barriers() throws {
        var table = BarrierTable()
        let members = [try wid("a"), try wid("b")]
        let key = BarrierKey(task: .default, name: "sync")
        let arrival = BarrierArrival(timeout: .seconds(10))
        let stale = #expect(throws: CoreError.self) {
            try table.onArrive(
                key, worker: members[0], arrival: arrival, seenEpoch: 1, membershipEpoch: 2, members: members,
                now: clock.now.monotonic)
        }
        #expect(stale?.reason == .staleEpoch && stale?.details.membershipEpoch == 2)
        let stranger = #expect(throws: CoreError.self) {
            try table.onArrive(
                key, worker: try wid("c"), arrival: arrival, seenEpoch: 2, membershipEpoch: 2, members: members,
                now: clock.now.monotonic)
        }
        #expect(stranger == MembershipFence.notAMember(try wid("c"), task: .default))
    }
}

@Suite("Errors: reasons and layout")
struct ErrorReasonTests {
    @Test("CoreError stays two words: a larger error made typed-throws initializers crash (Swift 6.3)")
    func layout() {
        #expect(MemoryLayout<CoreError>.size <= 2 * MemoryLayout<Int>.size)
    }

    @Test("an error without a reason has its code's generic one; messages and details are values")
    func generic() {
        for code in ErrorCode.allCases {
            let error = CoreError(code, "m")
            #expect(error.reason.rawValue == code.rawValue.uppercased())
            #expect(error.details.isEmpty)
        }
        var error = CoreError(.resourceExhausted, "full", reason: .taskFull, details: ErrorDetails(worldSize: 4))
        let copy = error
        error.message = "changed"
        error.details.worldSize = 5
        #expect(copy.message == "full" && copy.details.worldSize == 4, "a copy does not see a change")
        #expect(error != copy)
        #expect(CoreError(.notFound, "x") == CoreError(.notFound, "x", reason: .notFound))
    }

    @Test("a failed barrier generation's reason follows its code; its details name who was missing")
    func barrierFailure() throws {
        let missing = [RankedWorker(rank: 1, worker: try WorkerID("b"))]
        let reasons: [(ErrorCode, ErrorReason)] = [
            (.aborted, .barrierAborted), (.deadlineExceeded, .barrierTimeout), (.invalidArgument, .barrierMismatch),
        ]
        for (code, reason) in reasons {
            let failure = BarrierFailure(code: code, message: "m", missing: missing)
            #expect(failure.reason == reason && failure.details.missing == missing)
        }
    }
}

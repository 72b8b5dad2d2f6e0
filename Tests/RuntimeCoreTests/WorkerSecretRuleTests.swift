import RuntimeCore
import Testing

/// The core rule of worker secrets: a call that names a worker must present the secret of its current incarnation,
/// and a live member's id cannot be registered again without it.
@Suite("Membership: worker secrets")
struct WorkerSecretRuleTests {
    var membership = Membership()
    var clock = ManualClock()
    let first = SecretDigest(Array(repeating: 1, count: 32))
    let second = SecretDigest(Array(repeating: 2, count: 32))
    let guess = SecretDigest(Array(repeating: 1, count: 31) + [0])
    let a: WorkerID
    let b: WorkerID
    let nobody: WorkerID

    init() throws {
        a = try wid("a")
        b = try wid("b")
        nobody = try wid("nobody")
    }

    func spec(_ id: String, incarnation: String = "p1", task: String = "") throws -> WorkerSpec {
        var spec = try worker(id, task: task)
        spec.incarnation = incarnation
        return spec
    }

    func reason(_ body: () throws -> Void) -> ErrorReason? {
        do {
            try body()
            return nil
        } catch let error as CoreError {
            return error.reason
        } catch {
            return nil
        }
    }

    @Test("only the digest the registration kept authenticates a worker; a missing or near one is PERMISSION_DENIED")
    mutating func authenticate() throws {
        _ = try membership.onRegister(try spec("a"), secret: first, now: clock.now)
        #expect(membership.secretDigest(of: a) == first)
        try membership.authenticate(a, presented: SecretDigest(Array(repeating: 1, count: 32)))
        for presented in [nil, second, guess, SecretDigest([1])] {
            #expect(reason { try membership.authenticate(a, presented: presented) } == .workerSecretWrong)
        }
        do throws(CoreError) {
            try membership.authenticate(a, presented: nil)
        } catch {
            #expect(error.code == .permissionDenied)
            #expect(error.message.contains("this call carries none"))
        }
        #expect(reason { try membership.authenticate(nobody, presented: first) } == .unknownWorker)
    }

    @Test("a live member's id is refused to a registration without its secret; in another task it stays a precondition")
    mutating func idInUse() throws {
        _ = try membership.onRegister(try spec("a"), secret: first, now: clock.now)
        clock.advance(.milliseconds(1500))
        for attempt in [try spec("a"), try spec("a", incarnation: "p2")] {
            for presented in [nil, second] {
                do {
                    _ = try membership.onRegister(attempt, secret: second, presented: presented, now: clock.now)
                    Issue.record("registered \(attempt) without the secret")
                } catch {
                    #expect(error.code == .permissionDenied && error.reason == .workerIdInUse)
                    // The default suspect timeout is 2 s; 1.5 s of it passed.
                    #expect(error.details.retryAfter == .milliseconds(500))
                }
            }
        }
        #expect(
            reason { _ = try membership.onRegister(try spec("a", task: "other"), secret: second, now: clock.now) }
                == .failedPrecondition)
        #expect(membership.secretDigest(of: a) == first)
        #expect(membership.epoch(of: .default) == 1 && membership.ranks() == ["a"])
        #expect(membership.view(of: a)?.command == .proceed)
    }

    @Test("the same incarnation with its secret keeps the secret; another incarnation with it restarts with a new one")
    mutating func provenRegistrations() throws {
        _ = try membership.onRegister(try spec("a"), secret: first, now: clock.now)
        let (again, _) = try membership.onRegister(try spec("a"), secret: second, presented: first, now: clock.now)
        #expect(again.epoch == 1 && membership.secretDigest(of: a) == first)
        let (restarted, directives) = try membership.onRegister(
            try spec("a", incarnation: "p2"), secret: second, presented: first, now: clock.now)
        #expect(restarted.epoch == 3 && restarted.rank == 0)
        #expect(membership.secretDigest(of: a) == second)
        let persisted = directives.compactMap { directive -> WorkerRecord? in
            guard case .persist(let change) = directive else { return nil }
            return change.upserted.first
        }
        #expect(persisted.map(\.secretDigest) == [second], "the new digest is written")
        #expect(reason { try membership.authenticate(a, presented: first) } == .workerSecretWrong)
    }

    @Test("a member silent for the suspect timeout is taken over without its secret, with a new one: a crashed restart")
    mutating func silentMember() throws {
        _ = try membership.onRegister(try spec("a"), secret: first, now: clock.now)
        clock.advance(MembershipConfig.defaults.suspectAfter)
        let (restarted, _) = try membership.onRegister(
            try spec("a", incarnation: "p2"), secret: second, presented: nil, now: clock.now)
        #expect(restarted.rank == 0 && restarted.epoch == 3, "the old process left, the new one joined")
        #expect(membership.secretDigest(of: a) == second)
        // Its own incarnation, silent again (a registration retried after its reply was lost): a new secret too.
        clock.advance(MembershipConfig.defaults.suspectAfter)
        let third = SecretDigest(Array(repeating: 3, count: 32))
        let (again, _) = try membership.onRegister(
            try spec("a", incarnation: "p2"), secret: third, presented: nil, now: clock.now)
        #expect(again.epoch == 3 && membership.secretDigest(of: a) == third)
        #expect(reason { try membership.authenticate(a, presented: second) } == .workerSecretWrong)
    }

    @Test("a dead or departed worker's id is free: registering it needs no secret and gives a new one")
    mutating func departedIdIsFree() throws {
        _ = try membership.onRegister(try spec("a"), secret: first, now: clock.now)
        _ = try membership.onDeregister(a, now: clock.now)
        let (view, _) = try membership.onRegister(try spec("a", incarnation: "p2"), secret: second, now: clock.now)
        #expect(view.rank == 0 && membership.secretDigest(of: a) == second)

        _ = try membership.onRegister(try spec("b"), secret: first, now: clock.now)
        clock.advance(MembershipConfig.defaults.deadAfter + .seconds(1))
        _ = membership.onTick(now: clock.now)
        #expect(membership.view(of: b)?.health == .dead)
        _ = try membership.onRegister(try spec("b", incarnation: "p9"), secret: second, now: clock.now)
        #expect(membership.secretDigest(of: b) == second)
    }

    @Test("a record from before secrets is claimed by registering again, and is checked from then on")
    mutating func recordsWithoutSecrets() throws {
        let old = WorkerRecord(spec: try spec("a"), joinSeq: 1, registeredAtMillis: 0, standing: .member)
        membership = Membership(restoring: [old], epochs: [.default: 1], now: clock.now)
        try membership.authenticate(a, presented: nil)
        let (_, directives) = try membership.onRegister(try spec("a"), secret: first, now: clock.now)
        #expect(directives.contains { if case .persist = $0 { true } else { false } })
        #expect(membership.secretDigest(of: a) == first)
        #expect(reason { try membership.authenticate(a, presented: nil) } == .workerSecretWrong)
    }

    @Test("digests compare by value whatever their bytes, and never print them")
    func digests() {
        #expect(first.matches(SecretDigest(Array(repeating: 1, count: 32))))
        #expect(!first.matches(guess) && !first.matches(SecretDigest([])))
        #expect("\(first)" == "SecretDigest(32 bytes)")
        // Stored and read back byte for byte (the database keeps `bytes`).
        let varied = (0..<32).map { UInt8($0 * 7 + 3) }
        #expect(SecretDigest(varied).bytes == varied)
        #expect(SecretDigest(SecretDigest(varied).bytes).matches(SecretDigest(varied)))
        #expect(!SecretDigest(varied).matches(SecretDigest(Array(varied.dropLast()) + [0])))
        // A malformed digest (a damaged row) matches nothing, not even itself, and is stored as no bytes.
        let short = SecretDigest([1])
        #expect(!short.matches(short) && !short.isWellFormed && short.bytes.isEmpty)
        // As a value it equals itself (records holding one compare and hash as values do), and no well-formed one.
        #expect(short == SecretDigest([]) && short != first && first == SecretDigest(Array(repeating: 1, count: 32)))
        #expect("\(short)" == "SecretDigest(malformed)")
    }
}

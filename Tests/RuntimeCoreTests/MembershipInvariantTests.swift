import Testing

@testable import RuntimeCore

/// Random sequences of joins, heartbeats, leaves, silences and restarts, checked against the invariants after every
/// event. Seeded, so a failure reproduces.
@Suite("Membership: invariants over random event sequences")
struct MembershipInvariantTests {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state ^ (state >> 29)
        }
    }

    /// What a model of the durable store would hold, fed by `persist` directives.
    struct Store {
        var records: [WorkerID: WorkerRecord] = [:]
        var epochs: [TaskID: UInt64] = [:]

        mutating func apply(_ directives: [Membership.Directive]) {
            for case .persist(let change) in directives {
                for record in change.upserted { records[record.spec.id] = record }
                for id in change.forgotten { records[id] = nil }
                epochs.merge(change.epochs) { $1 }
            }
        }
    }

    static let tasks = [TaskID.default, try! TaskID("job")]

    @Test("dense ranks, stable order of survivors, an epoch bump per change, a store that matches", arguments: 0..<200)
    func invariants(seed: UInt64) throws {
        var rng = Generator(state: seed &+ 1)
        var clock = ManualClock()
        var membership = Membership(config: try MembershipConfig(departedRetention: .seconds(20)))
        var store = Store()
        let names = (0..<12).map { "w\($0)" }

        for _ in 0..<300 {
            let before = Dictionary(uniqueKeysWithValues: Self.tasks.map { ($0, membership.members(of: $0)) })
            let epochsBefore = Dictionary(uniqueKeysWithValues: membership.tasks().map { ($0.taskID, $0.epoch) })
            let id = try WorkerID(names.randomElement(using: &rng)!)
            let directives: [Membership.Directive]
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<25:
                let task = Self.tasks.randomElement(using: &rng)!
                directives =
                    (try? membership.onRegister(
                        WorkerSpec(id: id, taskID: task, host: "h", port: 1), now: clock.now
                    ).directives) ?? []
            case 25..<60:
                directives = (try? membership.onHeartbeat(id, step: 1, metrics: [:], now: clock.now).directives) ?? []
            case 60..<68:
                directives = (try? membership.onDeregister(id, now: clock.now).directives) ?? []
            case 68..<97:
                clock.advance(.milliseconds(Int64.random(in: 50...1500, using: &rng)))
                directives = membership.onTick(now: clock.now)
            default:
                // Restart from what the store holds.
                clock.advance(.seconds(Int64.random(in: 1...30, using: &rng)))
                membership = Membership(
                    config: membership.config, restoring: Array(store.records.values), epochs: store.epochs,
                    now: clock.now)
                directives = []
            }
            store.apply(directives)

            for task in Self.tasks {
                let members = membership.members(of: task)
                #expect(Set(members).count == members.count, "no worker holds two ranks")
                for (rank, member) in members.enumerated() {
                    #expect(membership.view(of: member)?.rank == rank, "ranks are dense 0..n-1")
                    #expect(membership.task(of: member) == task)
                }
                // Survivors keep their relative order; newcomers come after them.
                let survivors = before[task, default: []].filter(members.contains)
                #expect(Array(members.prefix(survivors.count)) == survivors)
                // The epoch moves exactly when the membership does.
                let epoch = membership.tasks().first { $0.taskID == task }?.epoch ?? 0
                let oldEpoch = epochsBefore[task] ?? 0
                if members != before[task, default: []] {
                    #expect(epoch > oldEpoch, "a membership change bumps the epoch")
                } else {
                    #expect(epoch >= oldEpoch, "epochs never go back")
                }
                // The store agrees with memory about who is a member and at which epoch.
                let stored = store.records.values.filter { $0.spec.taskID == task && $0.standing == .member }
                #expect(Set(stored.map(\.spec.id)) == Set(members))
                #expect((store.epochs[task] ?? 0) == epoch)
            }
        }
    }

    @Test("identical event sequences give identical memberships")
    func deterministic() throws {
        func run() throws -> [String] {
            var clock = ManualClock()
            var membership = Membership()
            for index in 0..<50 {
                let name = "w\(index % 7)"
                if index % 3 == 0 {
                    _ = try? membership.onDeregister(try WorkerID(name), now: clock.now)
                } else {
                    _ = try membership.onRegister(try worker(name), now: clock.now)
                }
                clock.advance(.milliseconds(700))
                _ = membership.onTick(now: clock.now)
            }
            return membership.ranks()
        }
        #expect(try run() == run())
    }
}

import RuntimeCore
import Testing

@testable import DataShard

@Suite("Shard ledger: events")
struct ShardLedgerTests {
    let spec = try! DatasetSpec(name: "d", totalSamples: 1000, shardSize: 10, shuffle: true, seed: 5)
    let workers = (0..<4).map { try! WorkerID("w\($0)") }

    func owners(_ ledger: ShardLedger) -> [WorkerID?] {
        let owners = (0..<Int64(ledger.shardCount)).map { ledger.record(of: $0).owner }
        #expect(ledger.owners() == owners, "the bulk owners agree with the records")
        return owners
    }

    @Test("assignments come in epoch order, cover every shard once, and skip what is done")
    func assignments() throws {
        var ledger = ShardLedger(spec: spec, epoch: 3, members: workers, membershipEpoch: 4)
        let order = EpochShuffle.shardOrder(of: spec, epoch: 3)
        var all: [Int64] = []
        for worker in workers {
            let leases = ledger.assignment(for: worker, membershipEpoch: 4).leases
            let positions = leases.map { order.firstIndex(of: $0.shard)! }
            #expect(positions == positions.sorted(), "epoch order")
            all += leases.map(\.shard)
            #expect(leases.allSatisfy { $0.samples == spec.sampleRange(ofShard: $0.shard) && $0.consumed == 0 })
        }
        #expect(all.sorted() == Array(0..<100))
        let first = ledger.assignment(for: workers[0], membershipEpoch: 4).leases[0]
        _ = try ledger.report(worker: workers[0], membershipEpoch: 4, shard: first.shard, consumed: 10)
        #expect(!ledger.assignment(for: workers[0], membershipEpoch: 4).leases.contains { $0.shard == first.shard })
        #expect(ledger.doneCount == 1)
    }

    @Test("reports are idempotent cursors; a report from elsewhere or from before the lease is refused")
    func reports() throws {
        var ledger = ShardLedger(spec: spec, epoch: 0, members: workers, membershipEpoch: 4)
        let shard = ledger.assignment(for: workers[1], membershipEpoch: 4).leases[0].shard
        let (claimed, claim) = try ledger.report(worker: workers[1], membershipEpoch: 4, shard: shard, consumed: 0)
        #expect(claimed.state == .leased && claim.count == 1)
        _ = try ledger.report(worker: workers[1], membershipEpoch: 4, shard: shard, consumed: 6)
        let (again, none) = try ledger.report(worker: workers[1], membershipEpoch: 4, shard: shard, consumed: 3)
        #expect(again.consumed == 6 && none.isEmpty, "a cursor behind the recorded one changes nothing")

        let notYours = #expect(throws: CoreError.self) {
            try ledger.report(worker: workers[2], membershipEpoch: 4, shard: shard, consumed: 7)
        }
        #expect(notYours?.code == .failedPrecondition)
        #expect(notYours?.message.contains("is leased to w1") == true)
        for (shardID, consumed, message) in [
            (Int64(100), Int64(1), "shard_id must be between 0 and 99 (got 100)"),
            (shard, 11, "consumed must be between 0 and the shard's 10 samples (got 11)"),
        ] {
            #expect(throws: CoreError(.invalidArgument, message)) {
                try ledger.report(worker: workers[1], membershipEpoch: 4, shard: shardID, consumed: consumed)
            }
        }

        // w1 dies and rejoins: its old shard moved at the death; a report from its old life is refused.
        _ = ledger.syncMembers([workers[0], workers[2], workers[3]], membershipEpoch: 5)
        _ = ledger.syncMembers([workers[0], workers[2], workers[3], workers[1]], membershipEpoch: 6)
        let moved = ledger.record(of: shard)
        #expect(moved.owner != workers[1] && moved.consumed == 6 && moved.leaseEpoch == 5)
        let stale = #expect(throws: CoreError.self) {
            try ledger.report(worker: workers[1], membershipEpoch: 4, shard: shard, consumed: 10)
        }
        #expect(stale?.code == .failedPrecondition)
    }

    @Test("a claim from a view older than the worker's latest gain of shards is refused as stale")
    func staleClaim() throws {
        var ledger = ShardLedger(spec: spec, epoch: 0, members: workers, membershipEpoch: 4)
        // w1 restarts: its old process leaves (epoch 5) and its new one joins (epoch 6), taking donors' shards.
        _ = ledger.syncMembers([workers[0], workers[2], workers[3]], membershipEpoch: 5)
        _ = ledger.syncMembers([workers[0], workers[2], workers[3], workers[1]], membershipEpoch: 6)
        let shard = try #require(ledger.assignment(for: workers[1], membershipEpoch: 6).leases.first).shard
        let stale = #expect(throws: CoreError.self) {
            try ledger.report(worker: workers[1], membershipEpoch: 4, shard: shard, consumed: 0)
        }
        #expect(stale?.code == .failedPrecondition && stale?.message.contains("stale claim") == true)
        #expect(ledger.record(of: shard).state == .pending, "the refused claim changed nothing")
        let (claimed, _) = try ledger.report(worker: workers[1], membershipEpoch: 6, shard: shard, consumed: 0)
        #expect(claimed.state == .leased && claimed.leaseEpoch == 6)
    }

    @Test("a death moves only the dead worker's unfinished shards, with their cursors")
    func death() throws {
        var ledger = ShardLedger(spec: spec, epoch: 0, members: workers, membershipEpoch: 4)
        let leases = ledger.assignment(for: workers[2], membershipEpoch: 4).leases
        _ = try ledger.report(worker: workers[2], membershipEpoch: 4, shard: leases[0].shard, consumed: 10)
        _ = try ledger.report(worker: workers[2], membershipEpoch: 4, shard: leases[1].shard, consumed: 4)
        let before = owners(ledger)
        let directives = ledger.syncMembers([workers[0], workers[1], workers[3]], membershipEpoch: 5)
        let after = owners(ledger)
        for shard in 0..<100 where before[shard] != after[shard] {
            #expect(before[shard] == workers[2], "only w2's shards move")
        }
        #expect(after[Int(leases[0].shard)] == workers[2], "its done shard stays done where it was")
        #expect(ledger.record(of: leases[1].shard).consumed == 4, "the cursor travels with the shard")
        let moved = directives.flatMap { directive -> [Int64] in
            if case .moved(let move) = directive { move.shards } else { [] }
        }
        #expect(moved.count == leases.count - 1, "every unfinished shard of w2, in moves")
        #expect(Set(moved) == Set(leases.dropFirst().map(\.shard)))
    }

    @Test("a joiner gets a fair share of unstarted shards, nothing else moves, started shards stay")
    func join() throws {
        var ledger = ShardLedger(spec: spec, epoch: 0, members: workers, membershipEpoch: 4)
        var started: [Int64] = []
        for worker in workers {
            let lease = ledger.assignment(for: worker, membershipEpoch: 4).leases[0]
            _ = try ledger.report(worker: worker, membershipEpoch: 4, shard: lease.shard, consumed: 1)
            started.append(lease.shard)
        }
        let before = owners(ledger)
        let joiner = try WorkerID("w4")
        _ = ledger.syncMembers(workers + [joiner], membershipEpoch: 5)
        let after = owners(ledger)
        let moved = (0..<100).filter { before[$0] != after[$0] }
        #expect(moved.allSatisfy { after[$0] == joiner }, "every move goes to the joiner")
        #expect(moved.count == (100 - 4) / 5, "a fair share of the 96 unstarted shards")
        #expect(started.allSatisfy { !moved.contains(Int($0)) })
        #expect(moved.allSatisfy { ledger.record(of: Int64($0)).state == .pending })
    }

    @Test("pages cover the assignment exactly once, in order, each bounded; only the first page steals")
    func pages() throws {
        var ledger = ShardLedger(spec: spec, epoch: 1, members: Array(workers.prefix(2)), membershipEpoch: 2)
        let whole = ledger.assignment(for: workers[0], membershipEpoch: 2).leases
        var paged: [ShardLease] = []
        var after: Int64?
        repeat {
            let page = ledger.assignment(
                for: workers[0], membershipEpoch: 2, page: AssignmentPage(after: after, limit: 7))
            #expect(page.leases.count <= 7 && page.directives.isEmpty)
            paged += page.leases
            after = page.next
        } while after != nil
        #expect(paged == whole && whole.count > 7)
        // w0 finishes; a later page asks nothing of the ledger, the first page steals.
        for lease in whole {
            _ = try ledger.report(worker: workers[0], membershipEpoch: 2, shard: lease.shard, consumed: 10)
        }
        let later = ledger.assignment(for: workers[0], membershipEpoch: 2, page: AssignmentPage(after: 3, limit: 7))
        #expect(later.leases.isEmpty && later.directives.isEmpty)
        let first = ledger.assignment(for: workers[0], membershipEpoch: 2, page: AssignmentPage(limit: 7))
        #expect(first.leases.count == 7 && first.directives.count == 1 && first.next != nil)
    }

    @Test("a worker may hold at most maxClaimsPerWorker started, unfinished shards")
    func claimCap() throws {
        let big = try DatasetSpec(name: "d", totalSamples: 10_000, shardSize: 1, shuffle: true, seed: 5)
        var ledger = ShardLedger(spec: big, epoch: 0, members: [workers[0]], membershipEpoch: 1)
        let leases = ledger.assignment(for: workers[0], membershipEpoch: 1).leases
        for lease in leases.prefix(ShardLedger.maxClaimsPerWorker) {
            _ = try ledger.report(worker: workers[0], membershipEpoch: 1, shard: lease.shard, consumed: 0)
        }
        let refused = #expect(throws: CoreError.self) {
            try ledger.report(
                worker: workers[0], membershipEpoch: 1, shard: leases[ShardLedger.maxClaimsPerWorker].shard,
                consumed: 0)
        }
        #expect(refused?.code == .resourceExhausted && refused?.message.contains("finish some") == true)
        // Finishing one makes room; the refused claim changed nothing.
        #expect(ledger.inProgressCount == ShardLedger.maxClaimsPerWorker)
        _ = try ledger.report(worker: workers[0], membershipEpoch: 1, shard: leases[0].shard, consumed: 1)
        _ = try ledger.report(
            worker: workers[0], membershipEpoch: 1, shard: leases[ShardLedger.maxClaimsPerWorker].shard, consumed: 0)
        #expect(ledger.inProgressCount == ShardLedger.maxClaimsPerWorker)
    }

    @Test("a worker that runs out steals the later half of the unstarted shards of the most loaded")
    func stealing() throws {
        var ledger = ShardLedger(spec: spec, epoch: 0, members: Array(workers.prefix(2)), membershipEpoch: 2)
        for lease in ledger.assignment(for: workers[0], membershipEpoch: 2).leases {
            _ = try ledger.report(worker: workers[0], membershipEpoch: 2, shard: lease.shard, consumed: 10)
        }
        let victimBefore = ledger.assignment(for: workers[1], membershipEpoch: 2).leases.map(\.shard)
        let (stolen, directives) = ledger.assignment(for: workers[0], membershipEpoch: 2)
        #expect(stolen.count == (victimBefore.count + 1) / 2)
        #expect(stolen.map(\.shard) == Array(victimBefore.suffix(stolen.count)), "the ones the victim reaches last")
        #expect(directives.count == 1)
        #expect(
            ledger.assignment(for: workers[1], membershipEpoch: 2).leases.count == victimBefore.count - stolen.count)
    }

    /// What the database would hold for a ledger, fed by its directives.
    struct Persisted {
        var deltas: [LedgerDelta] = []
        var members: [WorkerID]
        var membershipEpoch: UInt64

        mutating func keep(_ directives: [ShardLedger.Directive]) {
            for directive in directives {
                switch directive {
                case .persist(let changed): deltas.append(.records(changed))
                case .moved(let move): deltas.append(.moved(move))
                case .membersChanged(let list, let epoch): (members, membershipEpoch) = (list, epoch)
                }
            }
        }

        func restore(
            _ spec: DatasetSpec, initial: [WorkerID], members current: [WorkerID], epoch: UInt64
        ) -> (ledger: ShardLedger, directives: [ShardLedger.Directive]) {
            ShardLedger.restored(
                spec: spec, epoch: 2, initialMembers: initial, initialMembershipEpoch: 4,
                deltas: deltas,
                lastMembers: members, lastMembershipEpoch: membershipEpoch, members: current, membershipEpoch: epoch)
        }
    }

    @Test("a restart with unchanged membership restores the ledger exactly and moves nothing")
    func restoreExactly() throws {
        var ledger = ShardLedger(spec: spec, epoch: 2, members: workers, membershipEpoch: 4)
        var persisted = Persisted(members: workers, membershipEpoch: 4)
        let w9 = try WorkerID("w9")
        persisted.keep(ledger.syncMembers(workers + [w9], membershipEpoch: 5))
        persisted.keep(ledger.syncMembers([workers[0], workers[2], workers[3], w9], membershipEpoch: 6))
        for lease in ledger.assignment(for: workers[3], membershipEpoch: 6).leases.prefix(3) {
            persisted.keep(try ledger.report(worker: workers[3], membershipEpoch: 6, shard: lease.shard, consumed: 5).1)
        }
        let members = [workers[0], workers[2], workers[3], w9]
        let (restored, directives) = persisted.restore(spec, initial: workers, members: members, epoch: 6)
        #expect(directives.isEmpty, "nothing moves: \(directives.count) directives")
        #expect((0..<100).map { restored.record(of: $0) } == (0..<100).map { ledger.record(of: $0) })
        #expect(restored.inProgressCount == ledger.inProgressCount && restored.doneCount == ledger.doneCount)
        #expect(restored.committedSamples == ledger.committedSamples && ledger.committedSamples > 0)
    }

    @Test("shards whose move was lost in a crash (owner no longer a member) move on restore")
    func restoreLostMoves() throws {
        var ledger = ShardLedger(spec: spec, epoch: 2, members: workers, membershipEpoch: 4)
        var persisted = Persisted(members: workers, membershipEpoch: 4)
        let w9 = try WorkerID("w9")
        persisted.keep(ledger.syncMembers(workers + [w9], membershipEpoch: 5))
        // w9 leaves; the coordinator crashes after writing the departure but before the ledger's moves.
        _ = ledger.syncMembers(workers, membershipEpoch: 6)
        let (restored, directives) = persisted.restore(spec, initial: workers, members: workers, epoch: 6)
        #expect(!directives.isEmpty)
        #expect((0..<100).allSatisfy { restored.record(of: $0).owner != w9 })
        var complete = restored
        for worker in workers {
            for lease in complete.assignment(for: worker, membershipEpoch: 6).leases {
                _ = try complete.report(worker: worker, membershipEpoch: 6, shard: lease.shard, consumed: 10)
            }
        }
        #expect(complete.isComplete, "every shard can be finished")
    }

    @Test(
        "joiners in one membership change each take the fair share, from members that held more, spread over the epoch")
    func joinersAtOnce() throws {
        let spec = try DatasetSpec(name: "d", totalSamples: 20_000, shardSize: 1, shuffle: true, seed: 5)
        let members = try (0..<200).map { try WorkerID("m\($0)") }
        let joiners = try (0..<50).map { try WorkerID("j\($0)") }
        var ledger = ShardLedger(spec: spec, epoch: 0, members: members, membershipEpoch: 1)
        let before = ledger.owners()
        let loadsBefore = Dictionary(
            uniqueKeysWithValues: ledger.remainingPerMember().map { ($0.worker, $0.remaining) })
        let directives = ledger.syncMembers(members + joiners, membershipEpoch: 2)
        let loads = Dictionary(uniqueKeysWithValues: ledger.remainingPerMember().map { ($0.worker, $0.remaining) })
        let fair = 20_000 / 250
        #expect(joiners.allSatisfy { loads[$0] == fair }, "\(joiners.map { loads[$0] ?? -1 })")
        // A member gives only what it holds above the fair share.
        #expect(members.allSatisfy { loads[$0]! >= min(fair, loadsBefore[$0]!) })
        #expect(loads.values.max()! <= Placement.capacity(items: 20_000, bins: 250, epsilon: 0.05))
        // Only joiners gained, one move each, and only what they took moved.
        let moved = zip(before, ledger.owners()).filter { $0.0 != $0.1 }
        #expect(moved.count == joiners.count * fair)
        #expect(moved.allSatisfy { joiners.contains($0.1!) })
        let moves = directives.compactMap { directive -> ShardMove? in
            if case .moved(let move) = directive { return move }
            return nil
        }
        #expect(Set(moves.compactMap(\.owner)) == Set(joiners) && moves.count == joiners.count)
        // Dealt in turns: every joiner's shards span the same stretch of the epoch order, not a slice of it each.
        let order = EpochOrder(spec: spec, epoch: 0)
        let spans = moves.map { move in
            let positions = move.shards.map { order.position(of: $0) }
            return (positions.min()!, positions.max()!)
        }
        let first = spans.map(\.0).max()!
        let last = spans.map(\.1).min()!
        #expect(first < last, "the joiners' shards overlap in epoch order: \(spans.prefix(3))")
    }

    @Test("joiners' takes are levelled up from the fewest unstarted shards, within each budget, the rest in list order")
    func fillLevelsUp() {
        #expect(ShardLedger.fill(10, levels: [0, 0, 0], budgets: [5, 5, 5]) == [4, 3, 3])
        // Level 5 takes 9 (2 + 5 + a budget of 2); the tenth goes to the first at that level with room.
        #expect(ShardLedger.fill(10, levels: [3, 0, 0], budgets: [9, 9, 2]) == [3, 5, 2])
        #expect(ShardLedger.fill(0, levels: [1, 2], budgets: [3, 3]) == [0, 0])
        #expect(ShardLedger.fill(6, levels: [1, 2], budgets: [3, 3]) == [3, 3])
        #expect(
            ShardLedger.fill(7, levels: [0, 0, 0, 0, 0, 0, 0], budgets: Array(repeating: 2, count: 7)) == [
                1, 1, 1, 1, 1, 1, 1,
            ])
    }
}

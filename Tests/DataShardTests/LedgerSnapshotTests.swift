import DataShard
import RuntimeCore
import Testing

/// A ledger restored from a snapshot and the changes after it is the ledger that took the snapshot, whenever it was
/// taken, and it is the ledger that replaying every change on the initial placement restores.
@Suite("Ledger snapshots")
struct LedgerSnapshotTests {
    let spec = try! DatasetSpec(name: "d", totalSamples: 900, shardSize: 3, shuffle: true, seed: 4)
    let initial = try! (0..<3).map { try WorkerID("w\($0)") }

    /// Everything a reader can see of a ledger: each shard's record, the loads, the counts.
    func view(_ ledger: ShardLedger) -> String {
        "\((0..<ledger.shardCount).map { ledger.record(of: Int64($0)) })\n\(ledger.remainingPerMember())\n"
            + "\(ledger.unowned) \(ledger.inProgressCount) \(ledger.doneCount) \(ledger.committedSamples)"
    }

    /// A random run of assignments, reports, joins, departures (every member gone once); returns the ledger, its
    /// changes, snapshots taken along the way (with how many changes preceded each), and the final members.
    func run(seed: UInt64) throws -> (
        ledger: ShardLedger, deltas: [LedgerDelta], snapshots: [(LedgerSnapshot, Int)], members: [WorkerID],
        epoch: UInt64
    ) {
        var members = initial
        var ledger = ShardLedger(spec: spec, epoch: 0, members: members, membershipEpoch: 1)
        var deltas: [LedgerDelta] = []
        var snapshots = [(ledger.snapshot(), 0)]
        var random = SplitMix64(seed: seed)
        var epoch: UInt64 = 1
        func keep(_ directives: [ShardLedger.Directive]) {
            for directive in directives {
                switch directive {
                case .persist(let records): deltas.append(.records(records))
                case .moved(let move): deltas.append(.moved(move))
                case .membersChanged: break
                }
            }
        }
        for round in 0..<700 {
            if round % 97 == 96 { snapshots.append((ledger.snapshot(), deltas.count)) }
            if round % 45 == 44 || round == 350 || members.isEmpty {
                epoch += 1
                if round == 350 {
                    members = []  // everyone departs: the shards are nobody's until someone joins
                } else if members.count > 2 && random.next() % 2 == 0 {
                    members.remove(at: Int(random.next() % UInt64(members.count)))
                } else {
                    members.append(try WorkerID("j\(round)"))
                }
                keep(ledger.syncMembers(members, membershipEpoch: epoch))
                continue
            }
            let worker = members[Int(random.next() % UInt64(members.count))]
            let (leases, directives) = ledger.assignment(for: worker, membershipEpoch: epoch)
            keep(directives)
            guard let lease = leases.first else { continue }
            let consumed = min(Int64(lease.samples.count), lease.consumed + Int64(random.next() % 3))
            keep(
                try ledger.report(worker: worker, membershipEpoch: epoch, shard: lease.shard, consumed: consumed)
                    .directives)
        }
        return (ledger, deltas, snapshots, members, epoch)
    }

    @Test(
        "snapshot plus later changes restores the live ledger, and what replaying everything restores",
        arguments: [1, 2, 3] as [UInt64])
    func snapshotPlusChanges(seed: UInt64) throws {
        let (live, deltas, snapshots, members, epoch) = try run(seed: seed)
        #expect(snapshots.count >= 7 && deltas.count > 500, "the run took snapshots and made changes")
        #expect(live.doneCount > 50 && live.inProgressCount > 0, "the run got somewhere")
        let (replayed, _) = ShardLedger.restored(
            spec: spec, epoch: 0, initialMembers: initial, initialMembershipEpoch: 1, deltas: deltas,
            lastMembers: members, lastMembershipEpoch: epoch, members: members, membershipEpoch: epoch)
        #expect(view(replayed) == view(live))
        for (snapshot, count) in snapshots {
            #expect(snapshot.problem(spec: spec) == nil)
            var (restored, directives) = ShardLedger.restored(
                spec: spec, epoch: 0, initialMembers: initial, initialMembershipEpoch: 1, snapshot: snapshot,
                deltas: Array(deltas[count...]), lastMembers: members, lastMembershipEpoch: epoch, members: members,
                membershipEpoch: epoch)
            #expect(directives.isEmpty, "nothing moves: membership did not change")
            #expect(view(restored) == view(live), "snapshot after \(count) of \(deltas.count) changes")
            // And it goes on as the live one does: the same assignments (steals included) for every member.
            var copy = live
            for member in members {
                let a = restored.assignment(for: member, membershipEpoch: epoch)
                let b = copy.assignment(for: member, membershipEpoch: epoch)
                #expect(a.leases == b.leases && a.directives == b.directives)
            }
        }
    }

    @Test("a snapshot of the current state restores with nothing to replay; its problems are found")
    func problems() throws {
        let (live, _, _, members, epoch) = try run(seed: 9)
        let snapshot = live.snapshot()
        let (restored, _) = ShardLedger.restored(
            spec: spec, epoch: 0, initialMembers: initial, initialMembershipEpoch: 1, snapshot: snapshot, deltas: [],
            lastMembers: members, lastMembershipEpoch: epoch, members: members, membershipEpoch: epoch)
        #expect(view(restored) == view(live))
        #expect(restored.snapshot() == snapshot)

        var twice = snapshot
        twice.slots[0].positions.append(twice.slots[1].positions.last!)
        twice.slots[0].positions.sort()
        #expect(twice.problem(spec: spec) != nil)
        var missing = snapshot
        let index = try #require(missing.slots.firstIndex { !$0.positions.isEmpty })
        missing.slots[index].positions.removeLast()
        #expect(missing.problem(spec: spec) == "shards nobody holds")
        var miscounted = snapshot
        miscounted.doneCount += 1
        #expect(miscounted.problem(spec: spec) == "a done count that disagrees with its bitmap")
        var overClaimed = snapshot
        overClaimed.slots[0].claimed = overClaimed.slots[0].remaining + 1
        #expect(overClaimed.problem(spec: spec) == "counters beyond what a worker holds")
        let other = try DatasetSpec(name: "d", totalSamples: 901, shardSize: 3, shuffle: true, seed: 4)
        #expect(snapshot.problem(spec: other) != nil, "a snapshot of another shard count")
    }
}

import DataShard
import RuntimeCore
import Testing

@Suite("Placement")
struct PlacementTests {
    func members(_ count: Int, from start: Int = 0) throws -> [WorkerID] {
        try (start..<start + count).map { try WorkerID("worker-\($0)") }
    }

    @Test("no worker holds more than ceil((1+ε)·shards/workers)", arguments: [(1000, 7), (10_000, 100), (37, 36)])
    func bounded(shards: Int, workers: Int) throws {
        let ring = ConsistentRing(members: try members(workers), salt: 1, virtualNodes: 64)
        let owners = Placement.place(shardCount: shards, ring: ring, salt: 1, epsilon: 0.05)
        var loads = [Int](repeating: 0, count: workers)
        for owner in owners { loads[Int(owner)] += 1 }
        #expect(loads.max()! <= Placement.capacity(items: shards, bins: workers, epsilon: 0.05))
        #expect(loads.reduce(0, +) == shards)
    }

    @Test("placement depends on who the members are, not on the order they are listed in")
    func orderIndependent() throws {
        let listed = try members(20)
        let a = ConsistentRing(members: listed, salt: 9, virtualNodes: 64)
        let b = ConsistentRing(members: listed.reversed(), salt: 9, virtualNodes: 64)
        let ownersA = Placement.place(shardCount: 2000, ring: a, salt: 9, epsilon: 0.05).map { a.members[Int($0)] }
        let ownersB = Placement.place(shardCount: 2000, ring: b, salt: 9, epsilon: 0.05).map { b.members[Int($0)] }
        #expect(ownersA == ownersB)
    }

    @Test("with the same members, every epoch's ledger starts with the same owners (cache locality)")
    func stableAcrossEpochs() throws {
        let spec = try DatasetSpec(name: "d", totalSamples: 50_000, shardSize: 100, shuffle: true, seed: 1)
        let workers = try members(8)
        let first = ShardLedger(spec: spec, epoch: 0, members: workers, membershipEpoch: 8)
        let second = ShardLedger(spec: spec, epoch: 1, members: workers, membershipEpoch: 8)
        #expect((0..<500).map { first.record(of: $0).owner } == (0..<500).map { second.record(of: $0).owner })
    }

    @Test("adding a worker to the ring moves about 1/(n+1) of the first choices, all to the newcomer")
    func ringJoin() throws {
        let before = ConsistentRing(members: try members(50), salt: 3, virtualNodes: 64)
        let after = ConsistentRing(members: try members(51), salt: 3, virtualNodes: 64)
        var moved = 0
        for shard in 0..<20_000 {
            let point = ConsistentRing.point(ofShard: Int64(shard), salt: 3)
            let old = before.members[before.firstChoice(for: point)!]
            let new = after.members[after.firstChoice(for: point)!]
            if old != new {
                moved += 1
                #expect(new.rawValue == "worker-50")
            }
            #expect(
                after.arcs(of: 50).contains(point) == (new.rawValue == "worker-50"), "arcs agree with first choices")
        }
        let fraction = Double(moved) / 20_000
        #expect(fraction > 0.5 / 51 && fraction < 2.0 / 51, "moved \(fraction), ideal \(1.0 / 51)")
    }

    @Test("configuration is checked")
    func config() {
        #expect(throws: CoreError.self) { try PlacementConfig(epsilon: 0) }
        #expect(throws: CoreError.self) { try PlacementConfig(epsilon: .nan) }
        #expect(throws: CoreError.self) { try PlacementConfig(virtualNodes: 0) }
        #expect(Placement.capacity(items: 100, bins: 3, epsilon: 0.05) == 35)
        #expect(Placement.capacity(items: 0, bins: 3, epsilon: 0.05) == 0)
    }
}

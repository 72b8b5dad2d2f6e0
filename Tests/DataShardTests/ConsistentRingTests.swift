import DataShard
import RuntimeCore
import Testing

@Suite("Placement: the ring made from the previous one")
struct ConsistentRingTests {
    func ids(_ range: Range<Int>) throws -> [WorkerID] { try range.map { try WorkerID("worker-\($0)") } }

    @Test("leaves, joins, both at once, a reordering and emptying give the ring a fresh build gives")
    func equalsAFreshBuild() throws {
        var generator = SplitMix64(seed: 17)
        var members = try ids(0..<40)
        var ring = ConsistentRing(members: members, salt: 5, virtualNodes: 16)
        var nextID = 40
        var emptied = 0
        for round in 0..<300 {
            var next = members
            switch Int.random(in: 0..<6, using: &generator) {
            case 0 where !next.isEmpty:
                next.remove(at: Int.random(in: 0..<next.count, using: &generator))
            case 1:
                next.removeAll { _ in Int.random(in: 0..<4, using: &generator) == 0 }
            case 2:
                let count = Int.random(in: 1...12, using: &generator)
                next += try ids(nextID..<nextID + count)
                nextID += count
            case 3 where !next.isEmpty:
                // A leave and a join together, and a worker that left coming back last.
                let gone = next.remove(at: Int.random(in: 0..<next.count, using: &generator))
                next += try ids(nextID..<nextID + 1) + [gone]
                nextID += 1
            case 4:
                next.shuffle(using: &generator)
            default:
                break  // No change.
            }
            // Every 75 rounds, every member leaves (and the next joiners start from an empty ring).
            if round % 75 == 74 {
                next = []
                emptied += 1
            }
            ring = ring.with(members: next)
            members = next
            #expect(ring == ConsistentRing(members: members, salt: 5, virtualNodes: 16), "round \(round)")
            #expect(ring.members == members)
        }
        #expect(nextID > 200 && emptied == 4)
    }

    @Test("a ring made from the previous one places shards as a fresh one does")
    func placesAsAFreshBuild() throws {
        let before = ConsistentRing(members: try ids(0..<100), salt: 3, virtualNodes: 64)
        let survivors = try ids(0..<100).filter { !$0.rawValue.hasSuffix("7") } + ids(100..<103)
        let made = before.with(members: survivors)
        let fresh = ConsistentRing(members: survivors, salt: 3, virtualNodes: 64)
        for shard in 0..<2_000 {
            let point = ConsistentRing.point(ofShard: Int64(shard), salt: 3)
            #expect(made.firstChoice(for: point) == fresh.firstChoice(for: point))
        }
        #expect(made.with(members: []).isEmpty)
    }
}

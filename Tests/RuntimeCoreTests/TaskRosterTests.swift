import Testing

@testable import RuntimeCore

@Suite("Membership: task roster (ranks in join order)")
struct TaskRosterTests {
    @Test("ranks stay dense and in join order through joins, single leaves and batches, as an array of members says")
    func ranksFollowTheModel() throws {
        var roster = TaskRoster()
        var model: [WorkerID] = []
        var generator = MembershipInvariantTests.Generator(state: 11)
        var joined = 0
        for round in 0..<6_000 {
            let roll = Int.random(in: 0..<10, using: &generator)
            if roll < 6 || model.isEmpty {
                let id = try wid("w\(joined)")
                joined += 1
                roster.append(id)
                model.append(id)
            } else {
                // Mostly one leave; sometimes a batch on either side of the one-pass threshold, with a stranger in it.
                let size = roll < 9 ? 1 : Int.random(in: 2...20, using: &generator)
                var batch = Set((0..<size).map { _ in model[Int.random(in: 0..<model.count, using: &generator)] })
                batch.insert(try wid("stranger"))
                roster.remove(batch)
                model.removeAll { batch.contains($0) }
            }
            #expect(roster.members == model, "round \(round)")
            #expect(roster.worldSize == model.count)
            // Every member's rank, checked now and then (each check is O(n log n)).
            if round % 97 == 0 || round > 5_900 {
                for (rank, id) in model.enumerated() {
                    #expect(roster.rank(of: id) == rank, "round \(round): \(id)")
                    #expect(roster.contains(id))
                }
            }
        }
        #expect(joined > 3_000)
        // Every worker that left (and the stranger) has no rank.
        let members = Set(model)
        let gone = try (0..<joined).map { try wid("w\($0)") }.filter { !members.contains($0) } + [try wid("stranger")]
        #expect(gone.count > 1_000)
        for id in gone { #expect(roster.rank(of: id) == nil && !roster.contains(id), "\(id)") }
    }

    @Test("a big roster: 5,000 joins, then every member leaves one at a time in a random order, ranks as the model's")
    func bigRosterEmptiesOneByOne() throws {
        let ids = try (0..<5_000).map { try wid("w\($0)") }
        var roster = TaskRoster()
        for id in ids { roster.append(id) }
        var model = ids
        var generator = MembershipInvariantTests.Generator(state: 23)
        var leaves = 0
        while !model.isEmpty {
            let id = model.remove(at: Int.random(in: 0..<model.count, using: &generator))
            roster.remove([id])
            leaves += 1
            #expect(roster.rank(of: id) == nil)
            if leaves % 250 == 0 || model.count < 20 {
                #expect(roster.members == model, "after \(leaves) leaves")
                for (rank, member) in model.enumerated() { #expect(roster.rank(of: member) == rank, "\(member)") }
            }
        }
        #expect(roster.worldSize == 0 && roster.members.isEmpty)
        // An emptied roster takes joiners from rank 0 again.
        roster.append(ids[42])
        #expect(roster.rank(of: ids[42]) == 0)
    }

    @Test("a left worker has no rank, and joining again puts it last")
    func leaveAndRejoin() throws {
        let ids = try (0..<5).map { try wid("w\($0)") }
        var roster = TaskRoster(epoch: 3, members: ids)
        roster.remove([ids[1]])
        #expect(roster.members == [ids[0], ids[2], ids[3], ids[4]])
        #expect(roster.rank(of: ids[1]) == nil)
        #expect(roster.rank(of: ids[2]) == 1)
        roster.append(ids[1])
        #expect(roster.members == [ids[0], ids[2], ids[3], ids[4], ids[1]])
        #expect(roster.rank(of: ids[1]) == 4)
    }

    @Test("rosters with the same epoch and members are equal, however their members' slots lie")
    func equalityIgnoresSlots() throws {
        let ids = try (0..<3).map { try wid("w\($0)") }
        var churned = TaskRoster(epoch: 9, members: [ids[0]])
        for id in ids.dropFirst() { churned.append(id) }
        let gone = try wid("gone")
        churned.append(gone)
        churned.remove([gone])
        let fresh = TaskRoster(epoch: 9, members: ids)
        #expect(churned == fresh)
        #expect(churned.hashValue == fresh.hashValue)
        churned.epoch += 1
        #expect(churned != fresh)
    }

    @Test("prefix counts agree with counting the occupied slots one by one")
    func prefixCounts() {
        var counts = PrefixCounts(capacity: 100, occupied: 37)
        var model = (0..<100).map { $0 < 37 }
        var generator = MembershipInvariantTests.Generator(state: 5)
        for _ in 0..<2_000 {
            let slot = Int.random(in: 0..<100, using: &generator)
            counts.add(model[slot] ? -1 : 1, at: slot)
            model[slot].toggle()
            let probe = Int.random(in: 0...100, using: &generator)
            #expect(counts.count(before: probe) == model[..<probe].filter { $0 }.count)
        }
        #expect(PrefixCounts(capacity: 0, occupied: 0).count(before: 0) == 0)
    }
}

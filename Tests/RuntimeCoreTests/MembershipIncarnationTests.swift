import RuntimeCore
import Testing

/// A restarted process registers again under its worker id with a new incarnation: the old process must leave the
/// task (barriers, checkpoints and shard leases must not wait for it) before the new one joins.
@Suite("Membership: restarted processes (incarnations)")
struct MembershipIncarnationTests {
    var membership = Membership()
    var clock = ManualClock()

    func spec(_ id: String, incarnation: String, task: String = "") throws -> WorkerSpec {
        var spec = try worker(id, task: task)
        spec.incarnation = incarnation
        return spec
    }

    @Test("another incarnation of a live member keeps the rank; the cores see the old process leave, then the new join")
    mutating func restartedProcess() throws {
        try membership.join(try spec("a", incarnation: "p1"), at: clock.now)
        try membership.join(try spec("b", incarnation: "p2"), at: clock.now)
        try membership.join(try spec("c", incarnation: "p3"), at: clock.now)
        clock.advance(.seconds(1))
        let (view, directives) = try membership.onRegister(try spec("b", incarnation: "p4"), now: clock.now)
        #expect(view.rank == 1 && view.worldSize == 3 && view.epoch == 5 && view.command == .proceed)
        #expect(membership.ranks() == ["a", "b", "c"])
        let changes = directives.compactMap { directive -> ([String], UInt64)? in
            guard case .membershipChanged(_, let members, let epoch, _) = directive else { return nil }
            return (members.map(\.rawValue), epoch)
        }
        #expect(
            changes.map(\.0) == [["a", "c"], ["a", "b", "c"]], "each core sees the old process leave, then the new")
        #expect(changes.map(\.1) == [4, 5])
        #expect(directives.contains(.log(.restarted(try wid("b"), .default, epoch: 5))))
        #expect(!directives.contains { if case .log(.joined) = $0 { true } else { false } }, "the task goes on")
        let persisted = directives.compactMap { directive -> MembershipChange? in
            guard case .persist(let change) = directive else { return nil }
            return change
        }
        #expect(persisted.count == 1)
        #expect(persisted.first?.epochs == [.default: 5])
        #expect(persisted.first?.upserted.first?.spec.incarnation == "p4")
        #expect(persisted.first?.upserted.first?.joinSeq == 2, "the join order, and so the rank, is kept")
        #expect(persisted.first?.upserted.first?.registeredAtMillis == clock.now.unixMillis)
    }

    @Test("the same incarnation, or one that does not say, registers again idempotently")
    mutating func sameOrUnsaid() throws {
        try membership.join(try spec("a", incarnation: "p1"), at: clock.now)
        for incarnation in ["p1", ""] {
            let (view, directives) = try membership.onRegister(
                try spec("a", incarnation: incarnation), now: clock.now)
            #expect(view.rank == 0 && view.epoch == 1)
            #expect(!directives.contains { if case .membershipChanged = $0 { true } else { false } })
        }
        // A worker that did not say which process it was, then says: idempotent too (it may be an older SDK).
        try membership.join(try spec("b", incarnation: ""), at: clock.now)
        let (view, _) = try membership.onRegister(try spec("b", incarnation: "p9"), now: clock.now)
        #expect(view.rank == 1 && view.epoch == 2)
    }

    @Test("another incarnation cannot move a live member to another task: the id belongs to one task at a time")
    mutating func notIntoAnotherTask() throws {
        try membership.join(try spec("a", incarnation: "p1", task: "one"), at: clock.now)
        let error = #expect(throws: CoreError.self) {
            try membership.onRegister(try spec("a", incarnation: "p2", task: "two"), now: clock.now)
        }
        #expect(error?.code == .failedPrecondition)
        #expect(membership.members(of: try TaskID("one")) == [try wid("a")])
    }

    @Test("a restart is restored from the durable records: the new incarnation, the rank, the epoch")
    mutating func restoredAfterRestart() throws {
        try membership.join(try spec("z", incarnation: "p0"), at: clock.now)
        var records: [WorkerID: WorkerRecord] = [:]
        var epochs: [TaskID: UInt64] = [:]
        for name in ["a", "b"] {
            let (_, joined) = try membership.onRegister(try spec(name, incarnation: "p1"), now: clock.now)
            apply(joined, to: &records, epochs: &epochs)
        }
        let (_, restarted) = try membership.onRegister(try spec("a", incarnation: "p2"), now: clock.now)
        apply(restarted, to: &records, epochs: &epochs)
        let restored = Membership(restoring: Array(records.values), epochs: epochs, now: clock.now)
        #expect(restored.members(of: .default) == [try wid("a"), try wid("b")])
        #expect(restored.view(of: try wid("a"))?.epoch == 5)
        let (again, directives) = try membership.onRegister(try spec("a", incarnation: "p2"), now: clock.now)
        #expect(again.epoch == 5 && directives.isEmpty, "the restored incarnation registers again idempotently")
    }

    private func apply(
        _ directives: [Membership.Directive], to records: inout [WorkerID: WorkerRecord], epochs: inout [TaskID: UInt64]
    ) {
        for case .persist(let change) in directives {
            for record in change.upserted { records[record.spec.id] = record }
            epochs.merge(change.epochs) { $1 }
        }
    }
}

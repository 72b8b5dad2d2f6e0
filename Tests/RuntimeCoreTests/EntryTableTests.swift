import Testing

@testable import RuntimeCore

@Suite("Membership: entry table")
struct EntryTableTests {
    func entry(_ name: String, step: Int64 = 0) throws -> Membership.Entry {
        let spec = WorkerSpec(id: try wid(name), host: "127.0.0.1", port: 1)
        var entry = Membership.Entry(
            record: WorkerRecord(spec: spec, joinSeq: 1, registeredAtMillis: 0, standing: .member),
            health: .healthy, lastSeen: .zero)
        entry.step = step
        return entry
    }

    @Test("inserts, replaces, updates in place and removes by id; a removal from the middle moves nothing out of reach")
    func insertReplaceRemove() throws {
        var table = EntryTable()
        var model: [String: Int64] = [:]
        // A fixed pseudo-random sequence of sets, updates and removals over 40 ids.
        var state: UInt64 = 7
        var updated = 0
        for round in 0..<2_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let name = "w\(state >> 33 % 40)"
            if (state >> 20) % 4 == 0 {
                table[try wid(name)] = nil
                model[name] = nil
            } else if (state >> 20) % 4 == 1 {
                // The entry of that id (wherever a removal moved it) is changed, and the body's result comes back.
                let result = table.update(try wid(name)) { entry -> String in
                    entry.step += 1000
                    return entry.record.spec.id.rawValue
                }
                #expect(result == (model[name] == nil ? nil : name))
                if let step = model[name] {
                    model[name] = step + 1000
                    updated += 1
                }
            } else {
                table[try wid(name)] = try entry(name, step: Int64(round))
                model[name] = Int64(round)
            }
            #expect(table.count == model.count)
        }
        #expect(!model.isEmpty && updated > 100)
        for index in 0..<40 {
            let name = "w\(index)"
            let id = try wid(name)
            #expect(table[id]?.step == model[name])
        }
        #expect(Set(table.values.map(\.record.spec.id.rawValue)) == Set(model.keys))
        #expect(Dictionary(uniqueKeysWithValues: table.values.map { ($0.record.spec.id.rawValue, $0.step) }) == model)
    }

    @Test("updateEach changes every entry in place")
    func updateEach() throws {
        var table = EntryTable()
        for name in ["a", "b", "c"] { table[try wid(name)] = try entry(name) }
        table[try wid("a")] = nil
        table.updateEach { $0.step += 5 }
        #expect(table.values.map(\.step) == [5, 5])
        let (a, b, c) = (try wid("a"), try wid("b"), try wid("c"))
        #expect(table[b]?.step == 5 && table[c]?.step == 5 && table[a] == nil)
    }
}

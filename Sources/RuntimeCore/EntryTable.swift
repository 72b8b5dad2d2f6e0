/// The membership's entries by worker id: the entries in one dense array, and a dictionary from id to position.
///
/// An entry is about 200 bytes and every tracked worker has one. In a dictionary of entries each bucket holds a whole
/// entry, and a dictionary keeps between a quarter and five eighths of its buckets empty (at 100,000 workers it has
/// 262,144 of them: 60 MiB); here a bucket holds an id and a position (24 bytes), and the array at most doubles.
/// Removing swaps the last entry into the hole: the order of ``values`` means nothing.
struct EntryTable: Sendable {
    /// Where each worker's entry is in ``values``.
    private var position: [WorkerID: Int] = [:]
    /// Every entry, in no particular order.
    private(set) var values: [Membership.Entry] = []

    /// How many entries there are.
    var count: Int { values.count }

    /// The entry of `id`; setting nil removes it.
    subscript(id: WorkerID) -> Membership.Entry? {
        get { position[id].map { values[$0] } }
        set {
            if let newValue {
                assert(newValue.record.spec.id == id, "an entry is stored under its own worker's id")
                if let index = position[id] {
                    values[index] = newValue
                } else {
                    position[id] = values.count
                    values.append(newValue)
                }
            } else if let index = position.removeValue(forKey: id) {
                let last = values.count - 1
                if index != last {
                    values.swapAt(index, last)
                    position[values[index].record.spec.id] = index
                }
                values.removeLast()
            }
        }
    }

    /// Changes the entry of `id` in place (`body` must not change its worker id); nil when there is none. Getting the
    /// entry and setting it back would copy it twice (a retain and a release of each of its strings and maps).
    mutating func update<Result, Failure: Error>(
        _ id: WorkerID, _ body: (inout Membership.Entry) throws(Failure) -> Result
    ) throws(Failure) -> Result? {
        guard let index = position[id] else { return nil }
        let result = try body(&values[index])
        assert(values[index].record.spec.id == id, "update must not change a worker's id")
        return result
    }

    /// Changes every entry in place (`body` must not change an entry's worker id).
    mutating func updateEach(_ body: (inout Membership.Entry) -> Void) {
        for index in values.indices {
            body(&values[index])
            assert(position[values[index].record.spec.id] == index, "updateEach must not change a worker's id")
        }
    }
}

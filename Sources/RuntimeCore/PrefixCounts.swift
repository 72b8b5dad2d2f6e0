/// Which of `capacity` slots are occupied, counted by prefix: a Fenwick (binary indexed) tree, so that occupying or
/// freeing a slot and counting the occupied slots before one each take O(log capacity).
struct PrefixCounts: Sendable {
    /// The number of slots.
    let capacity: Int
    /// `tree[i]` counts the occupied slots in `(i - lowbit(i), i]`, 1-based (`tree[0]` is unused).
    private var tree: [Int32]

    /// Slots `0..<occupied` occupied, the rest free, in O(capacity).
    init(capacity: Int, occupied: Int) {
        precondition(occupied >= 0 && occupied <= capacity, "more occupied slots than slots")
        self.capacity = capacity
        var tree = [Int32](repeating: 0, count: capacity + 1)
        for index in stride(from: 1, through: capacity, by: 1) {
            if index <= occupied { tree[index] += 1 }
            let parent = index + (index & -index)
            if parent <= capacity { tree[parent] += tree[index] }
        }
        self.tree = tree
    }

    /// Marks `slot` occupied (`+1`) or free (`-1`); the caller keeps each slot's count at 0 or 1.
    mutating func add(_ delta: Int32, at slot: Int) {
        precondition(slot >= 0 && slot < capacity, "slot \(slot) is outside 0..<\(capacity)")
        var index = slot + 1
        while index <= capacity {
            tree[index] += delta
            index += index & -index
        }
    }

    /// How many slots before `slot` are occupied.
    func count(before slot: Int) -> Int {
        precondition(slot >= 0 && slot <= capacity, "slot \(slot) is outside 0...\(capacity)")
        var index = slot
        var sum = 0
        while index > 0 {
            sum += Int(tree[index])
            index -= index & -index
        }
        return sum
    }
}

/// The members of one task in rank order, and the task's membership epoch.
///
/// Ranks are the positions in `members`, which is kept in join order: removing workers re-densifies the ranks while
/// keeping the survivors' relative order, and a joiner takes the next rank. A member's rank is not stored: each member
/// keeps the slot it joined in, and its rank is the number of members in the slots before it (``PrefixCounts``). So a
/// leave costs O(log n) plus moving the member list down by one, where rewriting every later member's rank made the
/// departure of 10,000 workers quadratic (a third of the coordinator's CPU, on its actor; bench/RESULTS.md).
struct TaskRoster: Sendable, Hashable {
    /// Bumps on every join, leave and death (the fencing token).
    var epoch: UInt64
    /// Member ids, rank order.
    private(set) var members: [WorkerID] = []
    /// Each member's slot: its place in join order since the last ``compact()`` (a later joiner has a higher one).
    private var slots: [WorkerID: Int] = [:]
    /// Which slots hold a member.
    private var occupied = PrefixCounts(capacity: 0, occupied: 0)
    /// The slot the next joiner takes.
    private var nextSlot = 0

    init(epoch: UInt64 = 0, members: [WorkerID] = []) {
        self.epoch = epoch
        self.members = members
        compact()
    }

    var worldSize: Int { members.count }

    /// A member's rank, or nil for a worker that is not a member: O(log n).
    func rank(of id: WorkerID) -> Int? {
        slots[id].map { occupied.count(before: $0) }
    }

    /// Whether `id` is a member: O(1).
    func contains(_ id: WorkerID) -> Bool { slots[id] != nil }

    /// Appends a joiner (it gets the highest rank).
    mutating func append(_ id: WorkerID) {
        if nextSlot == occupied.capacity { compact() }
        slots[id] = nextSlot
        occupied.add(1, at: nextSlot)
        nextSlot += 1
        members.append(id)
    }

    /// Removes workers (those that are not members are ignored) and re-densifies ranks.
    mutating func remove(_ ids: Set<WorkerID>) {
        // A few at a time (a leave; deaths in one run of the failure detector): each in O(log n) and a move of the
        // members after it. Many at once: in one pass over the members.
        guard ids.count <= 8 else {
            members.removeAll { ids.contains($0) }
            compact()
            return
        }
        for id in ids {
            guard let slot = slots.removeValue(forKey: id) else { continue }
            members.remove(at: occupied.count(before: slot))
            occupied.add(-1, at: slot)
        }
    }

    /// Gives the members slots `0..<n` again, with room for as many joiners (so that joins compact in amortised
    /// O(1)).
    private mutating func compact() {
        slots = Dictionary(uniqueKeysWithValues: members.enumerated().map { ($1, $0) })
        occupied = PrefixCounts(capacity: max(16, 2 * members.count), occupied: members.count)
        nextSlot = members.count
    }

    // Two rosters are equal when their epochs and members are: where the slots lie is how, not what.
    static func == (lhs: TaskRoster, rhs: TaskRoster) -> Bool {
        lhs.epoch == rhs.epoch && lhs.members == rhs.members
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(epoch)
        hasher.combine(members)
    }
}

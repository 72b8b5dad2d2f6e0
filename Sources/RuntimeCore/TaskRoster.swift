/// The members of one task in rank order, and the task's membership epoch.
///
/// Ranks are the positions in `members`, which is kept in join order: removing workers re-densifies the ranks while
/// keeping the survivors' relative order, and a joiner takes the next rank.
struct TaskRoster: Sendable, Hashable {
    /// Bumps on every join, leave and death (the fencing token).
    var epoch: UInt64
    /// Member ids, rank order.
    private(set) var members: [WorkerID] = []
    /// Rank of each member (the inverse of `members`), so heartbeats answer in O(1).
    private(set) var ranks: [WorkerID: Int] = [:]

    init(epoch: UInt64 = 0, members: [WorkerID] = []) {
        self.epoch = epoch
        self.members = members
        reindex()
    }

    var worldSize: Int { members.count }

    /// Appends a joiner (it gets the highest rank).
    mutating func append(_ id: WorkerID) {
        ranks[id] = members.count
        members.append(id)
    }

    /// Removes workers and re-densifies ranks.
    mutating func remove(_ ids: Set<WorkerID>) {
        members.removeAll { ids.contains($0) }
        reindex()
    }

    private mutating func reindex() {
        ranks = Dictionary(uniqueKeysWithValues: members.enumerated().map { ($1, $0) })
    }
}

/// Ascending arrays of positions in an epoch's order: each ledger member's shards, kept sorted so that an assignment
/// lists them in epoch order without looking at anyone else's, and a report finds its shard by binary search.
extension Array where Element == UInt32 {
    /// Index of the first element not below `value`.
    func lowerBound(of value: UInt32) -> Int {
        var low = 0
        var high = count
        while low < high {
            let middle = (low + high) / 2
            if self[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Whether the (ascending) array holds `value`.
    func containsSorted(_ value: UInt32) -> Bool {
        let index = lowerBound(of: value)
        return index < count && self[index] == value
    }

    /// Merges the ascending `other` (disjoint from this one) in: O(count + other.count), or O(other.count) when
    /// `other` comes after everything here.
    mutating func mergeSorted(_ other: [UInt32]) {
        guard let first = other.first else { return }
        guard let last = self.last, last > first else {
            append(contentsOf: other)
            return
        }
        var merged: [UInt32] = []
        merged.reserveCapacity(count + other.count)
        var i = 0
        var j = 0
        while i < count, j < other.count {
            if self[i] < other[j] {
                merged.append(self[i])
                i += 1
            } else {
                merged.append(other[j])
                j += 1
            }
        }
        merged.append(contentsOf: self[i...])
        merged.append(contentsOf: other[j...])
        self = merged
    }

    /// Removes the elements of the ascending `removed` (all present): only the part from the first of them on is
    /// rewritten, so taking shards from the end of a member's list costs what is taken, not the list.
    mutating func removeSorted(_ removed: [UInt32]) {
        guard let first = removed.first else { return }
        var write = lowerBound(of: first)
        var next = 0
        for read in write..<count {
            if next < removed.count, self[read] == removed[next] {
                next += 1
            } else {
                self[write] = self[read]
                write += 1
            }
        }
        removeLast(count - write)
    }
}

/// The last events, numbered: each appended element gets the next id (counting from 1), and the newest ``capacity``
/// are kept, so that a client reconnecting with the last id it saw gets exactly what it missed, or learns that it
/// missed too much.
struct ReplayBuffer<Element: Sendable>: Sendable {
    /// What a client resuming after an id gets.
    enum Resume {
        /// Every event after the id (maybe none), oldest first.
        case replay([Element])
        /// Some events after the id are gone (or the id was never handed out by this buffer): start over.
        case reset
    }

    /// Most elements kept.
    let capacity: Int
    private var ring: [Element] = []
    /// Index in `ring` of the oldest element, once the ring is full.
    private var start = 0
    /// Id of the newest element; 0 before the first.
    private(set) var lastID: UInt64 = 0

    /// An empty buffer keeping at most `capacity` (at least 1) elements.
    init(capacity: Int) {
        self.capacity = max(1, capacity)
        ring.reserveCapacity(min(self.capacity, 4096))
    }

    /// The id the next element gets.
    var nextID: UInt64 { lastID + 1 }

    /// Id of the oldest element kept (`nextID` when empty).
    var oldestID: UInt64 { nextID - UInt64(ring.count) }

    /// Appends the element with id ``nextID``, dropping the oldest when full.
    mutating func append(_ element: Element) {
        lastID += 1
        if ring.count < capacity {
            ring.append(element)
        } else {
            ring[start] = element
            start = (start + 1) % capacity
        }
    }

    /// What a client that saw every event up to `since` (and none after) missed.
    func resume(after since: UInt64) -> Resume {
        guard since <= lastID, since + 1 >= oldestID else { return .reset }
        let skip = Int(since + 1 - oldestID)
        var missed: [Element] = []
        missed.reserveCapacity(ring.count - skip)
        for offset in skip..<ring.count { missed.append(ring[(start + offset) % ring.count]) }
        return .replay(missed)
    }
}

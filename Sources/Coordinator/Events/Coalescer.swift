/// Coalesces changes per key so that each key is emitted at most once per ``interval`` with its latest state: a
/// change marks the key; ``due(now:)`` hands out the marked keys whose last emission is at least an interval ago.
/// Marking is a set insertion, so it can sit on a hot path (heartbeats); the work happens when keys are due.
struct Coalescer<Key: Hashable & Sendable>: Sendable {
    /// Least time between two emissions of one key; the owner may change it (a new value applies from the next
    /// ``due(now:)``).
    var interval: Duration
    private var marked: Set<Key> = []
    /// When each recently emitted key was emitted (pruned once an interval old).
    private var emitted: [Key: Duration] = [:]

    /// A coalescer emitting each key at most once per `interval`.
    init(interval: Duration) {
        self.interval = interval
    }

    /// Whether any key is marked.
    var isEmpty: Bool { marked.isEmpty }

    /// `key` changed.
    mutating func mark(_ key: Key) {
        marked.insert(key)
    }

    /// Stops tracking `key` (it no longer exists).
    mutating func forget(_ key: Key) {
        marked.remove(key)
        emitted[key] = nil
    }

    /// The marked keys that may be emitted at monotonic time `now` (at most `limit` of them), which count as emitted
    /// then; the others stay marked for a later call.
    mutating func due(now: Duration, limit: Int = .max) -> [Key] {
        if !emitted.isEmpty { emitted = emitted.filter { now - $0.value < interval } }
        guard !marked.isEmpty else { return [] }
        var due: [Key] = []
        for key in marked where emitted[key] == nil {
            guard due.count < limit else { break }
            due.append(key)
            emitted[key] = now
        }
        for key in due { marked.remove(key) }
        return due
    }
}

import Synchronization

/// The bytes of gRPC request messages the coordinator is receiving at once, across every connection and stream.
///
/// The transport buffers a request message until all of it has arrived. A message is charged its declared length when
/// its 5-byte prefix arrives and released once its last byte has passed (or its stream ends): so half-sent messages,
/// however many streams carry them, never hold more than ``limit`` bytes. A message that would pass the limit is
/// refused before any of it is buffered (``GRPCMessageSizeGuard``).
final class InboundBudget: Sendable {
    /// The most bytes of messages received at once.
    let limit: Int
    private let used = Mutex(0)

    /// A budget of `limit` bytes.
    init(limit: Int) {
        self.limit = limit
    }

    /// Charges `bytes` for a message being received; false (nothing charged) when that would pass the limit.
    func reserve(_ bytes: Int) -> Bool {
        used.withLock { used in
            guard used + bytes <= limit else { return false }
            used += bytes
            return true
        }
    }

    /// Gives back what ``reserve(_:)`` charged.
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        used.withLock { $0 = max(0, $0 - bytes) }
    }

    /// Bytes charged now.
    var inUse: Int { used.withLock { $0 } }
}

import Synchronization

/// The bytes of gRPC request messages the coordinator is receiving at once: across every connection and stream, and
/// per connection.
///
/// The transport buffers a request message until all of it has arrived. A message is charged its declared length when
/// its 5-byte prefix arrives and released once its last byte has passed (or its stream ends): so half-sent messages,
/// however many streams carry them, never hold more than ``limit`` bytes, and those of one connection never more than
/// ``perConnection`` (one connection cannot take the whole budget and starve the others). A message that would pass
/// either is refused before any of it is buffered (``GRPCMessageSizeGuard``).
///
/// When the bytes charged fall back to almost nothing after they passed ``trimThreshold``, the budget asks its
/// ``MemoryTrimmer`` to give the freed buffers back to the system.
final class InboundBudget: Sendable {
    /// The most bytes of messages received at once, in all.
    let limit: Int
    /// The most bytes of messages received at once on one connection.
    let perConnection: Int

    /// A trim is requested once the bytes charged drop to at most ``trimLowWater`` after they reached this.
    static let trimThreshold = 16 << 20
    /// See ``trimThreshold``.
    static let trimLowWater = 1 << 20

    private struct State {
        var used = 0
        /// The most bytes charged since the last trim request.
        var peak = 0
        /// Bytes charged per connection (a connection's entry goes when its charge is back to 0).
        var byConnection: [ObjectIdentifier: Int] = [:]
    }

    private let state = Mutex(State())
    private let trimmer: MemoryTrimmer?

    /// Why ``reserve(_:connection:)`` refused a message.
    enum Refusal: Equatable {
        /// Every connection's messages together would pass ``limit``; `inUse` were charged.
        case total(inUse: Int)
        /// The connection's messages would pass ``perConnection``; `inUse` were charged to it.
        case connection(inUse: Int)
    }

    /// A budget of `limit` bytes in all and `perConnection` bytes per connection (at most `limit`).
    init(limit: Int, perConnection: Int? = nil, trimmer: MemoryTrimmer? = nil) {
        self.limit = limit
        self.perConnection = min(perConnection ?? limit, limit)
        self.trimmer = trimmer
    }

    /// Charges `bytes` for a message being received on `connection`; the refusal (nothing charged) when that would
    /// pass a limit.
    func reserve(_ bytes: Int, connection: ObjectIdentifier) -> Refusal? {
        state.withLock { state in
            let own = state.byConnection[connection, default: 0]
            guard own + bytes <= perConnection else { return .connection(inUse: own) }
            guard state.used + bytes <= limit else { return .total(inUse: state.used) }
            state.used += bytes
            state.peak = max(state.peak, state.used)
            state.byConnection[connection] = own + bytes
            return nil
        }
    }

    /// Gives back what ``reserve(_:connection:)`` charged.
    func release(_ bytes: Int, connection: ObjectIdentifier) {
        guard bytes > 0 else { return }
        let drained = state.withLock { state in
            state.used = max(0, state.used - bytes)
            let own = state.byConnection[connection, default: 0] - bytes
            state.byConnection[connection] = own > 0 ? own : nil
            guard state.peak >= Self.trimThreshold, state.used <= Self.trimLowWater else { return false }
            state.peak = state.used
            return true
        }
        if drained { trimmer?.request() }
    }

    /// Bytes charged now, in all.
    var inUse: Int { state.withLock { $0.used } }

    /// Bytes charged now to `connection`.
    func inUse(connection: ObjectIdentifier) -> Int { state.withLock { $0.byConnection[connection, default: 0] } }
}

import NIOCore
import Synchronization

/// Caps the HTTP connections one client address may hold open at once, so that a client opening connections and
/// leaving them unfinished (headers never completed, bodies trickled) cannot take every file descriptor the
/// coordinator has: beyond the cap, a new connection from that address is closed at once. Idle connections are closed
/// by the HTTP server's idle timeout (`--http-idle-timeout`); together they bound what one address can hold.
public final class HTTPConnectionLimit: Sendable {
    /// Connections one address may hold open at once.
    public let perClient: Int
    private let open = Mutex<[String: Int]>([:])

    /// A limit of `perClient` connections per client address (at least 1).
    public init(perClient: Int) {
        self.perClient = max(1, perClient)
    }

    /// The connections `address` holds now (for tests and metrics).
    public func connections(of address: String) -> Int { open.withLock { $0[address] ?? 0 } }

    /// Counts a new connection from `address`; false (and not counted) when the address is at its cap.
    func acquire(_ address: String) -> Bool {
        open.withLock { open in
            let current = open[address] ?? 0
            guard current < perClient else { return false }
            open[address] = current + 1
            return true
        }
    }

    /// Forgets a connection from `address`.
    func release(_ address: String) {
        open.withLock { open in
            let remaining = (open[address] ?? 1) - 1
            open[address] = remaining > 0 ? remaining : nil
        }
    }

    /// A handler for one connection's pipeline.
    func handler() -> HTTPConnectionLimitHandler { HTTPConnectionLimitHandler(limit: self) }
}

/// Counts its connection against the client address's cap while it is open, and closes it at once when the address
/// is over the cap.
final class HTTPConnectionLimitHandler: ChannelInboundHandler, RemovableChannelHandler {
    // Never unwrapped: the request parts pass through untouched (the default channelRead forwards them).
    typealias InboundIn = Never

    private let limit: HTTPConnectionLimit
    private var counted: String?

    init(limit: HTTPConnectionLimit) {
        self.limit = limit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let counted { limit.release(counted) }
        counted = nil
        context.fireChannelInactive()
    }

    private func admit(_ context: ChannelHandlerContext) {
        guard counted == nil else { return }
        let address = context.channel.remoteAddress?.ipAddress ?? "unknown"
        if limit.acquire(address) {
            counted = address
        } else {
            context.close(promise: nil)
        }
    }
}

@available(*, unavailable)
extension HTTPConnectionLimitHandler: Sendable {}

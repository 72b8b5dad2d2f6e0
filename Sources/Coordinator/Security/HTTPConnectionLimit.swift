public import Logging
import NIOCore
import Synchronization

/// Caps the HTTP connections one client address may hold open at once, so that a client opening connections and
/// leaving them unfinished (headers never completed, bodies trickled) cannot take every file descriptor the
/// coordinator has: beyond the cap, a new connection from that address is closed at once, and a warning (at most one
/// a minute per address) names the address and the flag. Idle connections are closed by the HTTP server's idle
/// timeout (`--http-idle-timeout`); together they bound what one address can hold.
public final class HTTPConnectionLimit: Sendable {
    /// Connections one address may hold open at once.
    public let perClient: Int
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var open: [String: Int] = [:]
        /// Per address over its cap: refusals not yet reported, and when the last warning went out.
        var refused: [String: (count: Int, warned: NIODeadline)] = [:]
    }

    /// A limit of `perClient` connections per client address (at least 1); refusals are logged to `logger`.
    public init(perClient: Int, logger: Logger) {
        self.perClient = max(1, perClient)
        self.logger = logger
    }

    /// The connections `address` holds now (for tests and metrics).
    public func connections(of address: String) -> Int { state.withLock { $0.open[address] ?? 0 } }

    /// Counts a new connection from `address`; false (and not counted) when the address is at its cap.
    func acquire(_ address: String) -> Bool {
        let now = NIODeadline.now()
        let (admitted, report) = state.withLock { state -> (Bool, Int?) in
            let current = state.open[address] ?? 0
            if current < perClient {
                state.open[address] = current + 1
                return (true, nil)
            }
            var refused = state.refused[address] ?? (0, .uptimeNanoseconds(0))
            refused.count += 1
            let due = refused.warned == .uptimeNanoseconds(0) || now - refused.warned >= .minutes(1)
            let report = due ? refused.count : nil
            if due { refused = (0, now) }
            state.refused[address] = refused
            return (false, report)
        }
        if let report {
            logger.warning(
                "HTTP connections refused: the client address holds the most it may",
                metadata: [
                    "address": "\(address)", "refused": "\(report)", "limit": "\(perClient)",
                    "advice": "raise --http-max-connections-per-client if it is a proxy or NAT many people share",
                ])
        }
        return admitted
    }

    /// Forgets a connection from `address`.
    func release(_ address: String) {
        state.withLock { state in
            let remaining = (state.open[address] ?? 1) - 1
            state.open[address] = remaining > 0 ? remaining : nil
            if remaining <= 0 { state.refused[address] = nil }
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

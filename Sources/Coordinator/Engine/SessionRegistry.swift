public import RuntimeCore
import Synchronization

/// One message for a worker's session stream.
public struct SessionUpdate: Sendable, Hashable {
    /// Why it is sent.
    public enum Kind: Sendable, Hashable {
        /// The reply to a heartbeat sent on the stream.
        case heartbeatAck
        /// Sent unasked: membership changed or a command is pending.
        case push
    }

    /// Why it is sent.
    public var kind: Kind
    /// The worker's current view.
    public var view: MembershipView
}

/// The open `WorkerSession` streams, one per worker, so the engine can push to them.
public final class SessionRegistry: Sendable {
    /// A token that identifies one stream of a worker (a reconnect replaces the previous stream).
    public typealias Token = UInt64

    private struct Session {
        var token: Token
        var channel: SessionChannel
    }

    private struct State {
        var sessions: [WorkerID: Session] = [:]
        var nextToken: Token = 1
        var closed = false
    }

    private let state = Mutex(State())

    /// Creates an empty registry.
    public init() {}

    /// Attaches a worker's stream, closing the worker's previous one. Returns nil (and closes `channel`) once the
    /// registry is closed for shutdown.
    public func attach(_ worker: WorkerID, channel: SessionChannel) -> Token? {
        let (token, previous): (Token?, Session?) = state.withLock { state in
            guard !state.closed else { return (nil, nil) }
            let token = state.nextToken
            state.nextToken += 1
            return (token, state.sessions.updateValue(Session(token: token, channel: channel), forKey: worker))
        }
        previous?.channel.close(reason: "replaced by a newer session stream of worker \(worker)")
        if token == nil { channel.close(reason: Self.shutdownReason) }
        return token
    }

    /// Detaches a worker's stream if it is still the one identified by `token`.
    public func detach(_ worker: WorkerID, token: Token) {
        state.withLock { state in
            if state.sessions[worker]?.token == token { state.sessions[worker] = nil }
        }
    }

    /// The worker's open stream, if any.
    public func channel(of worker: WorkerID) -> SessionChannel? {
        state.withLock { $0.sessions[worker]?.channel }
    }

    /// Number of open streams.
    public var count: Int { state.withLock { $0.sessions.count } }

    /// Ends every stream and refuses new ones (graceful shutdown: open streams would otherwise keep the gRPC server
    /// draining forever).
    public func closeAll() {
        let sessions = state.withLock { state in
            state.closed = true
            defer { state.sessions = [:] }
            return Array(state.sessions.values)
        }
        for session in sessions { session.channel.close(reason: Self.shutdownReason) }
    }

    private static let shutdownReason = "the coordinator is shutting down: reconnect when it is back"
}

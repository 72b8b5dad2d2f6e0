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

/// What a session stream's writer receives: an update to send, or the reason the coordinator is closing the stream.
public enum SessionSignal: Sendable, Hashable {
    /// Send this to the worker.
    case update(SessionUpdate)
    /// End the stream with UNAVAILABLE and this message (the worker reconnects).
    case close(reason: String)
}

/// The open `WorkerSession` streams, one per worker, so the engine can push to them.
///
/// A stream's buffer holds only the newest update: views are level-triggered (each carries the whole current state,
/// command included), so a slow stream skips stale views instead of queueing them, and a burst of membership changes
/// costs each worker one message.
public final class SessionRegistry: Sendable {
    /// A token that identifies one stream of a worker (a reconnect replaces the previous stream).
    public typealias Token = UInt64

    private struct Session {
        var token: Token
        var sink: AsyncStream<SessionSignal>.Continuation
    }

    private struct State {
        var sessions: [WorkerID: Session] = [:]
        var nextToken: Token = 1
        var closed = false
    }

    private let state = Mutex(State())

    /// Creates an empty registry.
    public init() {}

    /// Makes the stream a session writes from: it keeps only the newest update.
    public static func makeStream() -> (AsyncStream<SessionSignal>, AsyncStream<SessionSignal>.Continuation) {
        AsyncStream.makeStream(of: SessionSignal.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Attaches a worker's stream, ending the worker's previous one. Returns nil (and ends `sink`) once the registry
    /// is closed for shutdown.
    public func attach(_ worker: WorkerID, sink: AsyncStream<SessionSignal>.Continuation) -> Token? {
        let (token, previous): (Token?, Session?) = state.withLock { state in
            guard !state.closed else { return (nil, nil) }
            let token = state.nextToken
            state.nextToken += 1
            let previous = state.sessions.updateValue(Session(token: token, sink: sink), forKey: worker)
            return (token, previous)
        }
        if let previous {
            previous.sink.yield(.close(reason: "replaced by a newer session stream of worker \(worker)"))
            previous.sink.finish()
        }
        if token == nil {
            sink.yield(.close(reason: Self.shutdownReason))
            sink.finish()
        }
        return token
    }

    /// Detaches a worker's stream if it is still the one identified by `token`.
    public func detach(_ worker: WorkerID, token: Token) {
        state.withLock { state in
            if state.sessions[worker]?.token == token { state.sessions[worker] = nil }
        }
    }

    /// Sends an update to a worker's stream, if it has one. Returns whether it had one.
    @discardableResult
    public func send(_ update: SessionUpdate, to worker: WorkerID) -> Bool {
        guard let sink = state.withLock({ $0.sessions[worker]?.sink }) else { return false }
        sink.yield(.update(update))
        return true
    }

    /// Whether a worker has an open stream.
    public func hasSession(_ worker: WorkerID) -> Bool {
        state.withLock { $0.sessions[worker] != nil }
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
        for session in sessions {
            session.sink.yield(.close(reason: Self.shutdownReason))
            session.sink.finish()
        }
    }

    private static let shutdownReason = "the coordinator is shutting down: reconnect when it is back"
}

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

/// The coordinator's end of one `WorkerSession` stream: updates go in, the stream's writer takes them out.
///
/// The buffer is bounded and keeps the newest updates: views are level-triggered (each carries the worker's whole
/// current state), so a worker that reads too slowly skips stale views instead of making the coordinator queue them.
/// Closing is sticky: the reason survives however many updates race with it, so the writer always learns why the
/// stream ended.
public final class SessionChannel: Sendable {
    /// How many unread updates a stream keeps before dropping the oldest.
    public static let bufferSize = 16

    private let continuation: AsyncStream<SessionUpdate>.Continuation
    private let reason = Mutex<String?>(nil)

    /// A channel and the stream its writer reads.
    public static func make() -> (AsyncStream<SessionUpdate>, SessionChannel) {
        let (stream, continuation) = AsyncStream.makeStream(
            of: SessionUpdate.self, bufferingPolicy: .bufferingNewest(bufferSize))
        return (stream, SessionChannel(continuation: continuation))
    }

    private init(continuation: AsyncStream<SessionUpdate>.Continuation) {
        self.continuation = continuation
    }

    /// Queues an update for the worker.
    public func send(_ update: SessionUpdate) {
        continuation.yield(update)
    }

    /// Ends the stream because the worker closed its side or failed (no reason: the reader reports it).
    public func finish() {
        continuation.finish()
    }

    /// Ends the stream on the coordinator's initiative; the writer ends the call with UNAVAILABLE and `reason`.
    public func close(reason: String) {
        self.reason.withLock { $0 = $0 ?? reason }
        continuation.finish()
    }

    /// Why the coordinator closed the stream, if it did.
    public var closeReason: String? { reason.withLock { $0 } }
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

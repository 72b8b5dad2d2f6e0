import GRPCCore
public import RuntimeProto
import Synchronization

/// The barrier calls of many simulated workers over one `BarrierStream`, as the Python SDK's hub carries every
/// barrier of a process: arrivals that come together leave in one message, and one message answers every call a
/// generation releases. The stream opens on the first call and again after it breaks; calls in flight when it breaks
/// fail with its error, as their unary calls would have.
public final class BarrierHub: Sendable {
    private typealias Waiter = CheckedContinuation<Dtruntime_V1_BarrierStreamReply, any Error>

    private final class Stream: Sendable {
        let number: UInt64
        let doorbell: AsyncStream<Void>.Continuation
        let rings: AsyncStream<Void>

        init(number: UInt64) {
            self.number = number
            (rings, doorbell) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        }
    }

    private struct State {
        var nextID: UInt64 = 1
        var streams: UInt64 = 0
        var stream: Stream?
        /// Calls for the current stream not sent yet.
        var outbox: [Dtruntime_V1_BarrierStreamCall] = []
        /// Every call waiting for its answer, with the number of the stream it went on.
        var waiting: [UInt64: (waiter: Waiter, stream: UInt64)] = [:]
        var closed = false
    }

    private let state = Mutex(State())
    private let connections: SwarmConnections
    private let connection: Int

    /// A hub for the calls of one connection.
    public init(_ connections: SwarmConnections, connection: Int) {
        self.connections = connections
        self.connection = connection
    }

    /// One arrival: waits for the generation's release and returns it.
    ///
    /// - Throws: `RPCError` with the status the unary `BarrierSync` would have ended with (`ABORTED`,
    ///   `DEADLINE_EXCEEDED`, `FAILED_PRECONDITION` ...), or the stream's error when it broke.
    public func arrive(_ arrival: Dtruntime_V1_BarrierSyncRequest) async throws -> Dtruntime_V1_BarrierSyncResponse {
        let reply = try await withCheckedThrowingContinuation { (waiter: Waiter) in
            let (opened, doorbell, refused) = state.withLock {
                state -> (Stream?, AsyncStream<Void>.Continuation?, Bool) in
                guard !state.closed else { return (nil, nil, true) }
                let id = state.nextID
                state.nextID += 1
                state.outbox.append(
                    .with {
                        $0.callID = id
                        $0.arrival = arrival
                    })
                if let stream = state.stream {
                    state.waiting[id] = (waiter, stream.number)
                    return (nil, stream.doorbell, false)
                }
                state.streams += 1
                let stream = Stream(number: state.streams)
                state.stream = stream
                state.waiting[id] = (waiter, stream.number)
                return (stream, stream.doorbell, false)
            }
            if refused {
                waiter.resume(throwing: RPCError(code: .unavailable, message: "the barrier hub is closed"))
                return
            }
            doorbell?.yield()
            if let opened { Task { await self.run(opened) } }
        }
        if reply.hasResponse { return reply.response }
        let code = Status.Code(rawValue: Int(reply.code)).flatMap(RPCError.Code.init) ?? .unknown
        throw RPCError(code: code, message: reply.message)
    }

    /// Ends the stream; calls still waiting fail.
    public func close() {
        let (stream, waiting) = state.withLock { state in
            state.closed = true
            defer {
                state.waiting = [:]
                state.outbox = []
            }
            return (state.stream, state.waiting)
        }
        stream?.doorbell.finish()
        for (waiter, _) in waiting.values {
            waiter.resume(throwing: RPCError(code: .unavailable, message: "the barrier hub is closed"))
        }
    }

    private func run(_ stream: Stream) async {
        var failure: any Error = RPCError(code: .unavailable, message: "the barrier stream ended")
        do {
            try await connections.stub(connection).barrierStream(
                metadata: connections.metadata,
                requestProducer: { writer in
                    for await _ in stream.rings {
                        let calls = self.state.withLock { state in
                            defer { state.outbox = [] }
                            return state.outbox
                        }
                        if !calls.isEmpty { try await writer.write(.with { $0.calls = calls }) }
                    }
                },
                onResponse: { response in
                    for try await reply in response.messages {
                        let waiters = self.state.withLock { state in
                            reply.callIds.compactMap { state.waiting.removeValue(forKey: $0)?.waiter }
                        }
                        for waiter in waiters { waiter.resume(returning: reply) }
                    }
                })
        } catch {
            failure = error
        }
        // The stream is gone: its calls fail (the callers retry as they would a broken unary call).
        let failed = state.withLock { state -> [Waiter] in
            if state.stream === stream {
                state.stream = nil
                state.outbox = []
            }
            let ids = state.waiting.filter { $0.value.stream == stream.number }.map(\.key)
            return ids.compactMap { state.waiting.removeValue(forKey: $0)?.waiter }
        }
        stream.doorbell.finish()
        for waiter in failed { waiter.resume(throwing: failure) }
    }
}

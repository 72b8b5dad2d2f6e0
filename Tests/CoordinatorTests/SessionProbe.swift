import GRPCCore
import RuntimeProto

/// One `WorkerSession` stream driven step by step from a test: send heartbeats, read acknowledgements and pushes.
struct SessionProbe {
    let send: AsyncStream<Dtruntime_V1_SessionRequest>.Continuation
    var events: AsyncThrowingStream<Dtruntime_V1_SessionEvent, any Error>.AsyncIterator

    /// Sends a heartbeat on the stream.
    func beat(_ id: String, step: Int64 = 0) {
        send.yield(.with { $0.heartbeat = heartbeat(id, step: step) })
    }

    /// The next event, or nil when the coordinator ended the stream cleanly; throws the stream's error.
    mutating func next() async throws -> Dtruntime_V1_SessionEvent? {
        try await events.next()
    }

    /// Sends a heartbeat and returns its acknowledgement (skipping pushes queued before it).
    mutating func heartbeatAck(_ id: String) async throws -> Dtruntime_V1_SessionEvent {
        beat(id)
        while let event = try await next() {
            if event.kind == .heartbeatAck { return event }
        }
        throw RPCError(code: .internalError, message: "the session ended before acknowledging the heartbeat")
    }
}

/// Opens a session, runs `body` with it, then half-closes and waits for the call to end.
func withSession<T: Sendable>(
    _ client: CoordinatorClient, metadata: Metadata = [:], _ body: @Sendable (inout SessionProbe) async throws -> T
) async throws -> T {
    let (requests, send) = AsyncStream.makeStream(of: Dtruntime_V1_SessionRequest.self)
    let (events, sink) = AsyncThrowingStream.makeStream(of: Dtruntime_V1_SessionEvent.self)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            try await client.workerSession(metadata: metadata) { writer in
                for await request in requests { try await writer.write(request) }
            } onResponse: { response in
                do {
                    for try await event in response.messages { sink.yield(event) }
                    sink.finish()
                } catch {
                    sink.finish(throwing: error)
                }
            }
        }
        var probe = SessionProbe(send: send, events: events.makeAsyncIterator())
        let result = try await body(&probe)
        send.finish()
        try await group.waitForAll()
        return result
    }
}

extension Harness {
    /// Lets `total` pass on the manual clock in steps, running `each` and a failure-detector tick at every step.
    func elapse(
        _ total: Duration, step: Duration = .milliseconds(250), each: () async throws -> Void = {}
    ) async rethrows {
        var elapsed = Duration.zero
        while elapsed < total {
            clock.advance(step)
            elapsed += step
            try await each()
            await engine.tick()
        }
    }
}

import GRPCCore
import RuntimeCore
import RuntimeProto
import Synchronization

/// The calls of one BarrierStream and their answers on their way out.
///
/// The engine hands over every call of this stream that one barrier generation answers at once (see
/// ``BarrierSink``), so they leave in one message: a process hosting many workers gets one release instead of one
/// reply per worker, and the reduced vector is encoded once. Memory is bounded: at most ``maxCallsInFlight`` calls may
/// be open or answered-but-not-yet-written at once; beyond that the stream ends with `RESOURCE_EXHAUSTED`.
final class BarrierStreamOutbox: BarrierSink {
    /// Calls one stream may have waiting at once: as many as the HTTP/2 streams one connection may carry.
    static let maxCallsInFlight = 16_384
    /// The largest message a client may send on a BarrierStream (the SDK sends at most 1 MiB; the transport's limit
    /// for other calls follows `--barrier-max-payload`).
    static let maxMessageBytes = 2 << 20

    private struct Answer {
        var callIDs: [UInt64]
        var result: Result<BarrierRelease, any Error>
    }

    private struct State {
        var answers: [Answer] = []
        /// When each open call arrived (monotonic).
        var open: [UInt64: Duration] = [:]
        /// Calls answered, waiting in `answers`.
        var unwritten = 0
        var inputEnded = false
        var closed = false
    }

    private let state = Mutex(State())
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private let metrics: CoordinatorMetrics
    private let now: @Sendable () -> Duration

    /// An outbox recording each call's duration, on the monotonic clock `now`, into `metrics`.
    init(metrics: CoordinatorMetrics, now: @escaping @Sendable () -> Duration) {
        self.metrics = metrics
        self.now = now
        (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The replies, a batch at a time, until the client has ended its side and every call was answered.
    var batches: some AsyncSequence<[Dtruntime_V1_BarrierStreamReply], Never> {
        wakeups.map { [self] _ in takeReplies() }
    }

    /// Counts call `callID` in, or throws (ending the stream: the client broke the rules) when its id is already in
    /// flight or the stream holds ``maxCallsInFlight`` calls.
    func open(_ callID: UInt64, at started: Duration) throws(CoreError) {
        try state.withLock { state throws(CoreError) in
            guard state.open[callID] == nil else {
                throw .invalid("call_id", "must be unique among the calls in flight on the stream", got: String(callID))
            }
            guard state.open.count + state.unwritten < Self.maxCallsInFlight else {
                throw CoreError(
                    .resourceExhausted,
                    "more than \(Self.maxCallsInFlight) barrier calls in flight on one stream (or replies not read): "
                        + "read the replies, and spread the calls over more streams",
                    reason: .limitReached)
            }
            state.open[callID] = started
        }
    }

    /// Answers open calls, all with `result`: they leave together, in one reply.
    func answer(_ callIDs: [UInt64], _ result: Result<BarrierRelease, any Error>) {
        let now = now()
        let started = state.withLock { state in
            let started = callIDs.compactMap { state.open.removeValue(forKey: $0) }
            state.answers.append(Answer(callIDs: callIDs, result: result))
            state.unwritten += callIDs.count
            // Signalled under the lock, so that the last answer's wake-up cannot come after the stream's end.
            if state.answers.count == 1 { wake.yield() }
            if state.inputEnded && state.open.isEmpty { wake.finish() }
            return started
        }
        // As RPCCallInterceptor records unary calls: normal protocol outcomes are not errors.
        var code: String?
        if case .failure(let error) = result {
            let status = RPCError(mapping: error)
            if status.reason.map(RPCCallInterceptor.expectedOutcomes.contains) != true {
                code = status.code.snakeCaseName
            }
        }
        for start in started { metrics.recordRPC("BarrierStream", duration: now - start, error: code) }
    }

    /// The client ended its side: the replies end once every call is answered, or now when `abandoning` (the stream
    /// broke, and nobody would read them).
    func inputEnded(abandoning: Bool = false) {
        state.withLock { state in
            state.inputEnded = true
            if abandoning || state.open.isEmpty { wake.finish() }
        }
    }

    /// The coordinator is shutting down (its parked calls were answered): the replies end after what is here.
    func close() {
        state.withLock { state in
            state.closed = true
            wake.finish()
        }
    }

    /// Whether ``close()`` ended the replies.
    var isClosed: Bool { state.withLock { $0.closed } }

    /// The answers so far, one reply per generation (and one per call that failed on its own).
    private func takeReplies() -> [Dtruntime_V1_BarrierStreamReply] {
        let answers = state.withLock { state in
            defer {
                state.answers = []
                state.unwritten = 0
            }
            return state.answers
        }
        return answers.map { Self.reply($0.callIDs, $0.result) }
    }

    private static func reply(
        _ callIDs: [UInt64], _ result: Result<BarrierRelease, any Error>
    ) -> Dtruntime_V1_BarrierStreamReply {
        var reply = Dtruntime_V1_BarrierStreamReply()
        reply.callIds = callIDs
        switch result {
        case .success(let release):
            reply.response = Dtruntime_V1_BarrierSyncResponse(release)
        case .failure(let error):
            let status = RPCError(mapping: error)
            reply.code = Int32(status.code.rawValue)
            reply.message = status.message
            if let failure = error as? BarrierFailure {
                reply.missing = failure.missing.map(Dtruntime_V1_Participant.init)
            }
            // The unary call's trailing metadata: its reason and details.
            for entry in status.metadata {
                if case .string(let value) = entry.value { reply.metadata[entry.key] = value }
            }
        }
        return reply
    }
}

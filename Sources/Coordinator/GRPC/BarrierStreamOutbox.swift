import GRPCCore
import RuntimeCore
import RuntimeProto
import Synchronization

/// The answers of one BarrierStream on their way out.
///
/// Every call on the stream that one barrier generation releases (or fails) goes out in one message: the engine
/// answers a generation's waiters in one go, so by the time the writer runs they are all here. A process hosting many
/// workers thus gets one release instead of one reply per worker, and the reduced vector is encoded once.
final class BarrierStreamOutbox: Sendable {
    /// Calls one stream may have waiting at once: as many as the HTTP/2 streams one connection may carry.
    static let maxCallsInFlight = 16_384

    private struct Answer {
        var callID: UInt64
        var generation: BarrierID?
        var result: Result<BarrierRelease, any Error>
    }

    private struct State {
        var answers: [Answer] = []
        var inFlight = 0
        var inputEnded = false
        var closed = false
    }

    private let state = Mutex(State())
    private let wakeups: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init() {
        (wakeups, wake) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// The replies, a batch at a time, until the client has ended its side and every call was answered.
    var batches: some AsyncSequence<[Dtruntime_V1_BarrierStreamReply], Never> {
        wakeups.map { [self] _ in takeReplies() }
    }

    /// Counts call `callID` in; false (and the call is answered RESOURCE_EXHAUSTED) when the stream has too many.
    func open(_ callID: UInt64) -> Bool {
        let admitted = state.withLock { state in
            guard state.inFlight < Self.maxCallsInFlight else { return false }
            state.inFlight += 1
            return true
        }
        if !admitted {
            let error = CoreError(
                .resourceExhausted,
                "too many barrier calls in flight on one stream (at most \(Self.maxCallsInFlight)): open another stream"
            )
            post(Answer(callID: callID, generation: nil, result: .failure(error)), finishing: false)
        }
        return admitted
    }

    /// Answers an opened call; `generation` groups it with the other calls the same generation answers.
    ///
    /// - Returns: the error the call ended with, if any.
    @discardableResult
    func answer(_ callID: UInt64, generation: BarrierID?, _ result: Result<BarrierRelease, any Error>) -> RPCError? {
        post(Answer(callID: callID, generation: generation, result: result), finishing: true)
        if case .failure(let error) = result { return RPCError(mapping: error) }
        return nil
    }

    /// The client ended its side: the replies end once every call is answered, or now when `abandoning` (the stream
    /// broke, and nobody would read them).
    func inputEnded(abandoning: Bool = false) {
        let finish = state.withLock { state in
            state.inputEnded = true
            return abandoning || state.inFlight == 0
        }
        if finish { wake.finish() }
    }

    /// The coordinator is shutting down (its parked calls were answered): the replies end after what is here.
    func close() {
        state.withLock { $0.closed = true }
        wake.finish()
    }

    /// Whether ``close()`` ended the replies.
    var isClosed: Bool { state.withLock { $0.closed } }

    private func post(_ answer: Answer, finishing: Bool) {
        let (first, last) = state.withLock { state in
            state.answers.append(answer)
            if finishing { state.inFlight -= 1 }
            return (state.answers.count == 1, state.inputEnded && state.inFlight == 0)
        }
        if first { wake.yield() }
        if last { wake.finish() }
    }

    /// The answers so far, one reply per generation (and one per call that failed on its own).
    private func takeReplies() -> [Dtruntime_V1_BarrierStreamReply] {
        let answers = state.withLock { state in
            defer { state.answers = [] }
            return state.answers
        }
        var replies: [Dtruntime_V1_BarrierStreamReply] = []
        var replyOfGeneration: [BarrierID: Int] = [:]
        for answer in answers {
            if let generation = answer.generation, let index = replyOfGeneration[generation] {
                replies[index].callIds.append(answer.callID)
                continue
            }
            if let generation = answer.generation { replyOfGeneration[generation] = replies.count }
            replies.append(Self.reply([answer.callID], answer.result))
        }
        return replies
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
        }
        return reply
    }
}

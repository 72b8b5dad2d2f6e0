import RuntimeCore
import RuntimeProto

/// A validated BarrierSync request, whether it came as a unary call or as one message of a BarrierStream.
struct BarrierCall {
    var name: String
    var worker: WorkerID
    var membershipEpoch: UInt64
    var arrival: BarrierArrival
    /// The worker's secret when the call carries its own (a BarrierStream shared by several workers), else nil: the
    /// call's metadata holds it.
    var secret: String?

    init(validating request: Dtruntime_V1_BarrierSyncRequest) throws(CoreError) {
        name = try Validation.name(request.name, field: "name")
        worker = try WorkerID(request.workerID)
        guard request.expected >= 0 else {
            throw CoreError.invalid(
                "expected", "must be >= 0 (0 means every member)", got: String(request.expected))
        }
        guard (0...86_400_000).contains(request.timeoutMs) else {
            throw CoreError.invalid(
                "timeout_ms", "must be between 0 (the default, 300 s) and 86400000", got: String(request.timeoutMs))
        }
        let timeout: Duration = request.timeoutMs == 0 ? .seconds(300) : .milliseconds(request.timeoutMs)
        let payload = request.hasPayload ? try ReduceInput(request.payload) : nil
        membershipEpoch = request.membershipEpoch
        secret = request.workerSecret.isEmpty ? nil : request.workerSecret
        arrival = BarrierArrival(expected: Int(request.expected), timeout: timeout, payload: payload)
    }
}

extension Dtruntime_V1_BarrierSyncResponse {
    init(_ release: BarrierRelease) {
        self.init()
        generation = release.generation
        participantCount = Int32(release.participants.count)
        membershipEpoch = release.membershipEpoch
        // Every unary reply is serialized separately: listing 1,024 members in each of 1,024 replies would be the bulk
        // of a release. A barrier of every member releases exactly the members at its epoch.
        if !release.everyMember {
            participants = release.participants.map(Dtruntime_V1_Participant.init)
        }
        if let result = release.result { self.result = Dtruntime_V1_ReducePayload(result) }
    }
}

extension Dtruntime_V1_Participant {
    init(_ participant: RankedWorker) {
        self.init()
        rank = Int32(participant.rank)
        workerID = participant.worker.rawValue
    }
}

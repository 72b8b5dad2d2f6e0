public import RuntimeCore

/// Barriers: arrivals park on a continuation (no thread per waiter) until their generation is released or fails.
extension CoordinatorEngine {
    /// `worker` arrives at barrier `name` of its task and waits for the generation's release.
    ///
    /// - Returns: the release (generation, participants, reduced vector).
    /// - Throws: a ``BarrierFailure`` for everyone when the generation fails; a `CoreError` for this caller only
    ///   (stale epoch, not a member, payload too large).
    public func barrierSync(
        name: String, worker: WorkerID, membershipEpoch: UInt64, arrival: BarrierArrival
    ) async throws -> BarrierRelease {
        try await withCheckedThrowingContinuation { continuation in
            do {
                try barrierArrive(
                    name: name, worker: worker, membershipEpoch: membershipEpoch, arrival: arrival,
                    waiter: .call { continuation.resume(with: $0) })
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// `worker` arrives at barrier `name` of its task; `waiter` is told once of the generation's release or failure
    /// (maybe before this returns, when this arrival completes the generation). No task waits meanwhile.
    ///
    /// - Throws: (and then never calls `waiter`) a `CoreError` for this caller only: stale epoch, not a member,
    ///   payload too large, or the coordinator shutting down.
    public func barrierArrive(
        name: String, worker: WorkerID, membershipEpoch: UInt64, arrival: BarrierArrival,
        waiter: BarrierWaiter
    ) throws {
        guard !shuttingDown else { throw Self.shuttingDownError }
        guard let view = membership.view(of: worker) else { throw Membership.unknown(worker) }
        let task = view.taskID
        let key = BarrierKey(task: task, name: name)
        let moment = now().monotonic
        let (id, directives) = try barriers.onArrive(
            key, worker: worker, arrival: arrival, seenEpoch: membershipEpoch,
            membershipEpoch: membership.epoch(of: task), members: membership.members(of: task), now: moment)
        barrierWaiters[id, default: []].append(waiter)
        noteBarrierArrival(id, worker: worker, at: moment)
        carryOut(directives)
    }

    /// Open barrier generations and the latency histograms, for `/api/barriers`.
    public func barrierStatus() -> BarrierStatus {
        BarrierStatus(
            open: barriers.snapshot(now: now().monotonic), waitTime: barrierWaitTime,
            releaseLatency: barrierReleaseLatency, released: barriersReleased, failed: barriersFailed)
    }

    /// Carries out barrier directives: resumes the parked calls and records the latencies.
    func carryOut(_ directives: [BarrierTable.Directive]) {
        for directive in directives {
            publishBarrierEvent(directive)
            switch directive {
            case .release(let id, let release, let arrivals):
                Self.deliver(.success(release), to: barrierWaiters.removeValue(forKey: id) ?? [])
                let released = now().monotonic
                if let last = arrivals.values.max() { barrierReleaseLatency.record(released - last) }
                for arrival in arrivals.values { barrierWaitTime.record(released - arrival) }
                barriersReleased += 1
                metrics.recordBarrier(
                    outcome: "released", release: arrivals.values.max().map { released - $0 },
                    waits: arrivals.values.map { released - $0 })
            case .fail(let id, let failure):
                Self.deliver(.failure(failure), to: barrierWaiters.removeValue(forKey: id) ?? [])
                barriersFailed += 1
                metrics.recordBarrier(outcome: failure.code.rawValue, release: nil, waits: [])
                logger.warning(
                    "barrier failed",
                    metadata: [
                        "task_id": "\(id.key.task)", "barrier": "\(id.key.name)", "generation": "\(id.generation)",
                        "code": "\(failure.code.rawValue)", "error": "\(failure.message)",
                    ])
            }
        }
    }
}

/// Where the outcome of a barrier arrival goes: the generation's release, or why it failed.
public enum BarrierWaiter: Sendable {
    /// A call waiting on its own (a unary BarrierSync).
    case call(@Sendable (Result<BarrierRelease, any Error>) -> Void)
    /// Call `callID` of a stream: the stream gets every one of its calls a generation answers in one go.
    case streamed(any BarrierSink, callID: UInt64)
}

/// Takes the outcome of many calls at once: a BarrierStream, which answers them in one message.
public protocol BarrierSink: AnyObject, Sendable {
    /// Calls `callIDs` all ended with `result`.
    func answer(_ callIDs: [UInt64], _ result: Result<BarrierRelease, any Error>)
}

extension CoordinatorEngine {
    /// Tells `waiters` of their generation's outcome: each call on its own, each stream once for all its calls.
    static func deliver(_ result: Result<BarrierRelease, any Error>, to waiters: [BarrierWaiter]) {
        var streams: [ObjectIdentifier: (sink: any BarrierSink, callIDs: [UInt64])] = [:]
        for waiter in waiters {
            switch waiter {
            case .call(let resume):
                resume(result)
            case .streamed(let sink, let callID):
                streams[ObjectIdentifier(sink), default: (sink, [])].callIDs.append(callID)
            }
        }
        for (sink, callIDs) in streams.values { sink.answer(callIDs, result) }
    }
}

/// Barriers at a glance, for `/api/barriers`.
public struct BarrierStatus: Sendable {
    /// Open generations.
    public var open: [BarrierSnapshot]
    /// Arrival to release, per participant.
    public var waitTime: LatencyHistogram
    /// Last arrival to every waiter resumed, per generation.
    public var releaseLatency: LatencyHistogram
    /// Generations released so far.
    public var released: Int
    /// Generations failed so far.
    public var failed: Int
}

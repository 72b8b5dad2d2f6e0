/// Registers every worker, at most `concurrency` at once, opening its session in `sessions` as soon as it is
/// registered (as the SDK's `Worker` starts heartbeating right after its registration: a worker registered early must
/// not go silent while the others register); returns the workers whose registration failed for good (each failure
/// counted in the recorder).
public func registerAll(
    _ workers: [SimulatedWorker], _ connections: SwarmConnections, concurrency: Int = 512,
    opening sessions: SwarmSessions? = nil, recorder: SwarmRecorder
) async -> [SimulatedWorker] {
    await forEachWorker(workers, concurrency: concurrency, call: "RegisterWorker", recorder: recorder) { worker in
        try await worker.register(connections)
        sessions?.open(worker)
    }
}

/// Deregisters every worker, at most `concurrency` at once; returns the workers whose deregistration failed for good
/// (each failure counted in the recorder).
public func deregisterAll(
    _ workers: [SimulatedWorker], _ connections: SwarmConnections, concurrency: Int = 512, reason: String,
    recorder: SwarmRecorder
) async -> [SimulatedWorker] {
    await forEachWorker(workers, concurrency: concurrency, call: "DeregisterWorker", recorder: recorder) { worker in
        try await worker.deregister(connections, reason: reason)
    }
}

/// Every worker leaves as the SDK's `Worker.close()` does at the end of a job: it closes its session, then deregisters,
/// at most `concurrency` at once, while the others' sessions stay open; returns the workers whose deregistration failed
/// for good (each failure counted in the recorder).
public func leaveAll(
    _ workers: [SimulatedWorker], _ connections: SwarmConnections, closing sessions: SwarmSessions,
    concurrency: Int = 512, reason: String, recorder: SwarmRecorder
) async -> [SimulatedWorker] {
    await forEachWorker(workers, concurrency: concurrency, call: "DeregisterWorker", recorder: recorder) { worker in
        await sessions.close(worker)
        try await worker.deregister(connections, reason: reason)
    }
}

/// Runs `body` for every worker, at most `concurrency` at once; returns the workers whose `body` threw, each error
/// counted in the recorder under `call`.
private func forEachWorker(
    _ workers: [SimulatedWorker], concurrency: Int, call: String, recorder: SwarmRecorder,
    _ body: @escaping @Sendable (SimulatedWorker) async throws -> Void
) async -> [SimulatedWorker] {
    await withTaskGroup(of: SimulatedWorker?.self) { group in
        var failed: [SimulatedWorker] = []
        var next = 0
        func add() {
            guard next < workers.count else { return }
            let worker = workers[next]
            next += 1
            group.addTask {
                do {
                    try await body(worker)
                    return nil
                } catch {
                    recorder.error(errorKey(call, error), message: "\(worker.id): \(error)")
                    return worker
                }
            }
        }
        for _ in 0..<max(1, concurrency) { add() }
        while let result = await group.next() {
            if let result { failed.append(result) }
            add()
        }
        return failed
    }
}

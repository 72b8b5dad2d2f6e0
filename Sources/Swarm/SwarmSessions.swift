import Synchronization

/// The session streams of many workers, each kept open (reopened after a break, as the SDK's heartbeat thread
/// does) until ``stop()``.
public final class SwarmSessions: Sendable {
    private let tasks: Mutex<[String: Task<Void, Never>]>
    private let connections: SwarmConnections

    /// Opens a session for each of `workers`.
    public init(_ workers: [SimulatedWorker], connections: SwarmConnections) {
        self.connections = connections
        var tasks: [String: Task<Void, Never>] = [:]
        for worker in workers { tasks[worker.id] = Self.keep(worker, connections) }
        self.tasks = Mutex(tasks)
    }

    /// Breaks one worker's stream for good (as its process crashing would).
    public func breakSession(of worker: SimulatedWorker) {
        tasks.withLock { $0.removeValue(forKey: worker.id) }?.cancel()
    }

    /// Opens (again) a worker's session.
    public func open(_ worker: SimulatedWorker) {
        let task = Self.keep(worker, connections)
        tasks.withLock { $0.updateValue(task, forKey: worker.id) }?.cancel()
    }

    /// Breaks every stream and waits until they are closed.
    public func stop() async {
        let all = tasks.withLock { tasks in
            defer { tasks = [:] }
            return Array(tasks.values)
        }
        for task in all { task.cancel() }
        for task in all { await task.value }
    }

    private static func keep(_ worker: SimulatedWorker, _ connections: SwarmConnections) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                do {
                    try await worker.runSession(connections)
                } catch {
                    if Task.isCancelled { return }
                    worker.recorder.count("session_breaks")
                }
                try? await Task.sleep(for: .milliseconds(Int.random(in: 50...150)))
            }
        }
    }
}

/// Registers every worker, at most `concurrency` at once, opening its session in `sessions` as soon as it is
/// registered (as the SDK's `Worker` starts heartbeating right after its registration: a worker registered early must
/// not go silent while the others register); returns the workers whose registration failed for good (each failure
/// counted in the recorder).
public func registerAll(
    _ workers: [SimulatedWorker], _ connections: SwarmConnections, concurrency: Int = 512,
    opening sessions: SwarmSessions? = nil, recorder: SwarmRecorder
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
                    try await worker.register(connections)
                    sessions?.open(worker)
                    return nil
                } catch {
                    recorder.error(errorKey("RegisterWorker", error), message: "\(worker.id): \(error)")
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

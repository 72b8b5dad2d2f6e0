import Synchronization

/// The session streams of many workers, each kept open (reopened after a break with the SDK's ``Backoff``, as its
/// heartbeat thread does) until ``stop()``, or until its worker's sessions are ended
/// (``SimulatedWorker/endSession()``): then only ``open(_:)`` opens it again.
public final class SwarmSessions: Sendable {
    private struct Session {
        let worker: SimulatedWorker
        let task: Task<Void, Never>
    }

    private let sessions: Mutex<[String: Session]>
    /// Set by ``stop()``: a session that ends is not opened again.
    private let stopping = Atomic(false)
    private let connections: SwarmConnections
    /// When sessions broke with an error.
    private let breaks = Mutex(TimeLog(capacity: 65_536))

    /// Opens a session for each of `workers`.
    public init(_ workers: [SimulatedWorker], connections: SwarmConnections) {
        self.connections = connections
        sessions = Mutex([:])
        for worker in workers { open(worker) }
    }

    /// When sessions broke with an error (``monotonicNanoseconds()``, in time order; the latest 65,536): e.g. when the
    /// swarm noticed that its coordinator was gone.
    public var breakTimes: [Int64] { breaks.withLock { $0.times } }

    /// Breaks one worker's stream for good (as its process crashing would).
    public func breakSession(of worker: SimulatedWorker) {
        sessions.withLock { $0.removeValue(forKey: worker.id) }?.task.cancel()
    }

    /// Opens (again) a worker's session.
    public func open(_ worker: SimulatedWorker) {
        let session = Session(worker: worker, task: keep(worker))
        sessions.withLock { $0.updateValue(session, forKey: worker.id) }?.task.cancel()
    }

    /// Ends one worker's stream as its process closing it does (see ``SimulatedWorker/endSession()``), and waits until
    /// it is closed (cancelled after `grace`, as ``endGracefully(_:grace:)`` does).
    public func close(_ worker: SimulatedWorker, grace: Duration = .seconds(10)) async {
        let session = sessions.withLock { $0.removeValue(forKey: worker.id) }
        worker.endSession()
        if let session { await endGracefully([session.task], grace: grace) }
    }

    /// Ends every stream, as processes closing their sessions do (see ``endGracefully(_:grace:)``), and waits until
    /// they are closed.
    public func stop() async {
        stopping.store(true, ordering: .sequentiallyConsistent)
        let all = sessions.withLock { sessions in
            defer { sessions = [:] }
            return Array(sessions.values)
        }
        for session in all { session.worker.endSession() }
        await endGracefully(all.map(\.task))
    }

    private func keep(_ worker: SimulatedWorker) -> Task<Void, Never> {
        Task {
            var delay = Backoff()
            while !Task.isCancelled, !stopping.load(ordering: .sequentiallyConsistent) {
                do {
                    try await worker.runSession(connections)
                } catch {
                    if Task.isCancelled { return }
                    worker.recorder.count("session_breaks")
                    breaks.withLock { $0.noteNow() }
                }
                // Ended by its process (``stop()``): not opened again.
                if worker.sessionsEnded { return }
                // As the SDK's heartbeat thread: the backoff starts over once a session was answered (here: a heartbeat
                // acknowledged; the SDK's, any event), and grows while the sessions fail (a coordinator restarting), so
                // that thousands of workers do not retry every 100 ms.
                if worker.session.acknowledged > 0 { delay.reset() }
                try? await Task.sleep(for: delay.next())
            }
        }
    }
}

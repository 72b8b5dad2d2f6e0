public import Logging
import Synchronization

/// The swarm `dtr serve --demo` runs against its own coordinator: a few small tasks of simulated workers that train
/// through the real API (sessions, shards, allreduces, checkpoints), and now and then a worker that crashes and comes
/// back as a new process, either within the dead timeout (a restart) or after it (declared dead, then a new join).
///
/// Demo workers carry the label ``demoLabel`` (`dtr/demo: true`), which `/api/workers` shows as `demo: true`. The `dtr/`
/// prefix is kept free by convention (docs/API.md asks users to), not checked: a worker of the same API could set it.
public final class DemoSwarm: Sendable {
    /// The label that marks a demo worker.
    public static let demoLabel = (key: "dtr/demo", value: "true")

    /// A task of the demo and its number of workers.
    public struct TaskShape: Sendable {
        /// The task id.
        public var name: String
        /// Its world size.
        public var workers: Int

        /// A task shape.
        public init(name: String, workers: Int) {
            self.name = name
            self.workers = workers
        }
    }

    let target: SwarmTarget
    let tasks: [TaskShape]
    let settings: TrainingSettings
    /// Time between two crashes (nil: none).
    let crashEvery: ClosedRange<Duration>?
    let deadAfter: Duration
    let logger: Logger
    private let stopping: AsyncStream<Void>
    private let stopper: AsyncStream<Void>.Continuation

    /// A demo of `tasks` against `target`; a worker of the largest task crashes about every `crashEvery`.
    public init(
        target: SwarmTarget,
        tasks: [TaskShape] = [TaskShape(name: "demo-mnist", workers: 4), TaskShape(name: "demo-resnet", workers: 8)],
        settings: TrainingSettings = TrainingSettings(),
        crashEvery: ClosedRange<Duration>? = .seconds(25)...(.seconds(45)), deadAfter: Duration, logger: Logger
    ) {
        self.target = target
        self.tasks = tasks
        self.settings = settings
        self.crashEvery = crashEvery
        self.deadAfter = deadAfter
        self.logger = logger
        (stopping, stopper) = AsyncStream.makeStream(of: Void.self)
    }

    /// Ends ``run()``: every demo worker leaves its task, then the connections close.
    public func stop() {
        stopper.finish()
    }

    /// Runs until ``stop()`` (every demo worker leaves its task first) or until the calling task is cancelled (they
    /// just stop, as if the host lost power).
    public func run() async throws {
        let connections = try SwarmConnections(target: target, connections: 2)
        let recorder = SwarmRecorder()
        let parts = CheckpointPartWriter()
        let hubs = (0..<connections.count).map { BarrierHub(connections, connection: $0) }
        let workers = tasks.flatMap { task in
            (0..<task.workers).map { index in (task, index) }
        }.enumerated().map { position, entry in
            SimulatedWorker(
                id: "\(entry.0.name)-w\(entry.1)", task: entry.0.name, connection: position,
                labels: [Self.demoLabel.key: Self.demoLabel.value, "node": "demo-node-\(entry.1 / 4)"],
                maxWorldSize: Int32(entry.0.workers), recorder: recorder)
        }
        let crashes = CrashSchedule()
        logger.info(
            "demo swarm starting: simulated workers train through the gRPC API (marked demo in /api/workers)",
            metadata: ["tasks": "\(tasks.map { "\($0.name)=\($0.workers)" }.joined(separator: ","))"])
        let work = Task {
            await withTaskGroup(of: Void.self) { group in
                for worker in workers {
                    let process = TrainingProcess(
                        worker: worker, connections: connections, hub: hubs[worker.connection % hubs.count],
                        parts: parts, settings: settings, logger: logger)
                    group.addTask { await self.supervise(process, crashes: crashes) }
                }
                if let crashEvery, let victims = tasks.max(by: { $0.workers < $1.workers }) {
                    let candidates = workers.filter { $0.task == victims.name }
                    group.addTask { await self.crashNowAndThen(candidates, every: crashEvery, crashes: crashes) }
                }
            }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                do {
                    try await connections.run()
                } catch {
                    self.logger.warning("demo swarm connections ended", metadata: ["error": "\(error)"])
                }
            }
            // Until stop() (the coordinator shuts down gracefully) or cancellation.
            for await _ in stopping {}
            crashes.stopAll()
            work.cancel()
            await work.value
            if !Task.isCancelled {
                // Leave gracefully, so that the tasks end `completed` rather than `failed` after the dead timeout.
                await withTaskGroup(of: Void.self) { leaving in
                    for worker in workers {
                        leaving.addTask {
                            try? await worker.deregister(connections, reason: "the demo swarm stopped")
                        }
                    }
                }
            }
            for hub in hubs { hub.close() }
            connections.shutdown()
        }
    }

    // MARK: Processes and crashes

    /// Runs the worker's processes one after another: a crashed one is replaced after the crash's delay.
    private func supervise(_ process: TrainingProcess, crashes: CrashSchedule) async {
        while !Task.isCancelled {
            let running = Task { await process.run() }
            guard let delay = await crashes.watch(process.worker.id, running) else { return }
            try? await Task.sleep(for: delay)
        }
    }

    /// Every `every` or so, a worker of `candidates` crashes: half the time it is back within a second (a restart,
    /// within the dead timeout), otherwise after the dead timeout (declared dead, then a new join).
    private func crashNowAndThen(
        _ candidates: [SimulatedWorker], every: ClosedRange<Duration>, crashes: CrashSchedule
    ) async {
        var restart = true
        while !Task.isCancelled {
            let low = every.lowerBound / .milliseconds(1)
            let high = every.upperBound / .milliseconds(1)
            try? await Task.sleep(for: .milliseconds(Double.random(in: low...high)))
            guard !Task.isCancelled, let victim = candidates.randomElement() else { return }
            let delay = restart ? Duration.seconds(1) : deadAfter + .seconds(3)
            logger.info(
                restart
                    ? "demo: a worker process crashes and its launcher restarts it at once"
                    : "demo: a worker process crashes; it comes back after the dead timeout",
                metadata: ["worker_id": "\(victim.id)", "back_in": "\(delay)"])
            crashes.crash(victim.id, comingBackAfter: delay)
            restart.toggle()
        }
    }
}

/// The running process of each demo worker, so that one can be crashed (cancelled) from outside.
final class CrashSchedule: Sendable {
    private struct Running {
        var task: Task<Void, Never>
        var comeBackAfter: Duration?
    }

    private let running = Mutex<[String: Running]>([:])
    private let stopped = Mutex(false)

    /// Waits for `worker`'s process `task` to end; returns how long to wait before its next process (nil: it ended
    /// on its own, or the demo stops).
    func watch(_ worker: String, _ task: Task<Void, Never>) async -> Duration? {
        running.withLock { $0[worker] = Running(task: task) }
        await withTaskCancellationHandler {
            await task.value
        } onCancel: {
            task.cancel()
        }
        let ended = running.withLock { $0.removeValue(forKey: worker) }
        if stopped.withLock({ $0 }) { return nil }
        return ended?.comeBackAfter
    }

    /// Kills the worker's process; a new one starts after `delay`.
    func crash(_ worker: String, comingBackAfter delay: Duration) {
        let task = running.withLock { running -> Task<Void, Never>? in
            running[worker]?.comeBackAfter = delay
            return running[worker]?.task
        }
        task?.cancel()
    }

    /// No process comes back any more.
    func stopAll() {
        stopped.withLock { $0 = true }
    }
}

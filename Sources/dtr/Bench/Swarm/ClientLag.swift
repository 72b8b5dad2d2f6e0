import Coordinator
import NIOPosix
import Synchronization

/// How far behind the benchmark's own threads run (its event loops and its concurrency pool), sampled every 250 ms
/// with the coordinator's probes (``SchedulingLag``). The simulated workers share the machine with the coordinator:
/// a heartbeat a worker handed to its stream waits on a client that runs behind before it leaves, and the coordinator
/// cannot hear it. The worst lag tells a reader whether a suspicion was the client's doing.
final class ClientLag: Sendable {
    private let lag = SchedulingLag()
    private let worst = Mutex(Duration.zero)
    private let running: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// Starts probing and sampling.
    init() {
        let task = Task { [self] in await run() }
        running.withLock { $0 = task }
    }

    private func run() async {
        let clock = ContinuousClock()
        let origin = clock.now
        let now: @Sendable () -> Duration = { clock.now - origin }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.lag.probePool(now: now) }
            group.addTask { await self.lag.probeEventLoops(of: MultiThreadedEventLoopGroup.singleton, now: now) }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .milliseconds(250))
                    let sample = self.lag.take(now: now())
                    self.worst.withLock { $0 = max($0, sample) }
                }
            }
        }
    }

    /// The worst lag sampled since the last call, starting over.
    func takeWorst() -> Duration {
        worst.withLock { worst in
            defer { worst = .zero }
            return worst
        }
    }

    /// Stops probing.
    func stop() async {
        let task = running.withLock { $0 }
        task?.cancel()
        await task?.value
    }
}

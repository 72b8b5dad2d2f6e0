public import NIOCore
import ServiceLifecycle
import Synchronization

/// How far behind the coordinator's threads are: the failure detector's measure of its own health.
///
/// A heartbeat's arrival is recorded when a session's reader task reads it, and that task runs on the concurrency
/// pool after the event loop has read the bytes. When the coordinator is saturated (thousands of workers registering
/// at once on a small machine), both queues grow, and heartbeats that reached the machine in time wait there, unheard:
/// judged on arrival, their workers would be suspected and declared dead for the coordinator's lateness. Probes
/// measure it: each asks its thread to run a trivial job at a moment, and the lag is how late the job runs (a probe
/// still waiting counts as late as it is so far). The detector extends every timeout by the lag since its last run
/// (``Membership/onTick(now:arrivals:lag:)``), as Lifeguard's local health awareness scales a slow node's timeouts,
/// so a slow coordinator declares deaths later instead of declaring the living dead.
///
/// Probes: one task on the concurrency pool (readers, the engine and writers run there) and one per event loop of
/// the gRPC server's group (they read the streams' bytes).
public final class SchedulingLag: Sendable {
    /// How often each probe asks its thread to run a job.
    public static let probeInterval = Duration.milliseconds(50)

    /// Where a probe's jobs run. A heartbeat's bytes wait for an event loop, then its reader task waits for the pool:
    /// the lag is the event loops' worst plus the pool's.
    public enum Stage: Sendable {
        case eventLoop
        case pool
    }

    private struct Probe {
        var stage: Stage
        /// When the job it asked for is due (nil while none is pending).
        var due: Duration?
        /// The latest a job ran past its moment since the last ``take(now:engineWait:)``.
        var worst = Duration.zero
        /// Stopped: it asks for no job any more (a job already queued may still run once).
        var retired = false
    }

    private let probes = Mutex<[Probe]>([])

    /// No probe yet.
    public init() {}

    /// A new probe's index.
    public func addProbe(_ stage: Stage) -> Int {
        probes.withLock { probes in
            probes.append(Probe(stage: stage))
            return probes.count - 1
        }
    }

    /// Probe `probe` asked for a job at `due` (monotonic).
    public func expect(_ probe: Int, due: Duration) {
        probes.withLock { probes in
            if !probes[probe].retired { probes[probe].due = due }
        }
    }

    /// Probe `probe` stopped: nothing it asked for counts as pending any more.
    public func retire(_ probe: Int) {
        probes.withLock { probes in
            probes[probe].retired = true
            probes[probe].due = nil
        }
    }

    /// Probe `probe`'s job ran at `moment` (monotonic).
    public func ran(_ probe: Int, at moment: Duration) {
        probes.withLock { probes in
            if let due = probes[probe].due { probes[probe].worst = max(probes[probe].worst, moment - due) }
            probes[probe].due = nil
        }
    }

    /// The lag since the last call, starting over: the largest an event loop's probe saw plus the largest the pool's
    /// saw (a job still pending past its moment counts as late as it is at `now`). `engineWait` is how long the
    /// caller's own job waited past its moment for the engine (the detector's run): calls queued there, a session's
    /// first heartbeat with its secret check among them, wait about as long, so it counts as the pool's.
    public func take(now: Duration, engineWait: Duration = .zero) -> Duration {
        probes.withLock { probes in
            var worst: [Stage: Duration] = [.pool: max(engineWait, .zero)]
            for index in probes.indices {
                let pending = probes[index].due.map { now - $0 } ?? .zero
                let stage = probes[index].stage
                worst[stage] = max(worst[stage] ?? .zero, probes[index].worst, pending)
                probes[index].worst = .zero
            }
            return worst.values.reduce(.zero, +)
        }
    }

    /// Probes the concurrency pool until cancelled or shut down gracefully: a task that sleeps ``probeInterval`` at a
    /// time and notes how late it wakes (`now` is the coordinator's monotonic clock).
    public func probePool(now: @Sendable () -> Duration) async {
        let probe = addProbe(.pool)
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let due = now() + Self.probeInterval
            expect(probe, due: due)
            try? await Task.sleep(for: Self.probeInterval)
            ran(probe, at: now())
        }
        // Not waiting any more: a stopped probe must not look late forever.
        retire(probe)
    }

    /// Probes each of `group`'s event loops until cancelled or shut down gracefully: a repeated job every
    /// ``probeInterval`` on each, noting how late it runs.
    public func probeEventLoops(of group: any EventLoopGroup, now: @escaping @Sendable () -> Duration) async {
        let interval = TimeAmount(Self.probeInterval)
        let jobs = group.makeIterator().map { loop in
            let probe = addProbe(.eventLoop)
            expect(probe, due: now() + Self.probeInterval)
            let job = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                let moment = now()
                self.ran(probe, at: moment)
                self.expect(probe, due: moment + Self.probeInterval)
            }
            return (probe, job)
        }
        while !Task.isCancelled, !Task.isShuttingDownGracefully { try? await Task.sleep(for: .milliseconds(100)) }
        for (probe, job) in jobs {
            // Retired first: a job the cancellation does not reach in time finds its probe retired.
            retire(probe)
            job.cancel()
        }
    }
}

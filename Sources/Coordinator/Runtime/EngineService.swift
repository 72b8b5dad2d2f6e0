import NIOPosix
import RuntimeCore
public import ServiceLifecycle
import Storage

/// Runs the engine's background work: the write-behind queue's flusher, the failure detector's ticks, the probes of
/// how far behind the coordinator runs (``SchedulingLag``), and the engine's side effects (``EffectRunner``).
///
/// On graceful shutdown the ticks stop, the effects still running are cancelled (and awaited), and the queue writes
/// what is pending before the service returns (within ``ShutdownWriteBudget``'s time); it is the first service of the
/// group, so it shuts down last, after the servers have drained.
public struct EngineService: Service {
    let engine: CoordinatorEngine

    public func run() async {
        let queue = engine.queue
        let effects = engine.effects
        let tick = engine.membershipConfig.tickInterval
        await withTaskCancellationOrGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    let dropped = await queue.run()
                    if dropped > 0 {
                        engine.logger.warning(
                            """
                            shutdown: pending changes not written within the shutdown's write budget; the restart \
                            recovers as after a crash (nothing unwritten was acknowledged)
                            """, metadata: ["changes": "\(dropped)"])
                    }
                }
                group.addTask { await effects.run() }
                // How far behind the pool and the gRPC server's event loops run, for the failure detector.
                let monotonic: @Sendable () -> Duration = { engine.now().monotonic }
                group.addTask { await engine.schedulingLag.probePool(now: monotonic) }
                group.addTask {
                    await engine.schedulingLag.probeEventLoops(
                        of: MultiThreadedEventLoopGroup.singleton, now: monotonic)
                }
                group.addTask {
                    // The failure detector's ticks, and its deaths at their deadlines between them (DetectorSchedule).
                    // One call on the engine a run: each run answers when the next death is due.
                    let clock = ContinuousClock()
                    let origin = clock.now
                    var schedule = DetectorSchedule(interval: tick, startingAt: .zero)
                    var deathDue: Duration?
                    var finished = Duration.zero
                    while !Task.isShuttingDownGracefully, !Task.isCancelled {
                        let (run, at) = schedule.next(deathDue: deathDue)
                        try? await Task.sleep(until: origin + at, clock: clock)
                        let untilDeath =
                            switch run {
                            // Due when the schedule said, or when the previous run finished if that was later (its
                            // wait for the engine was counted then).
                            case .tick: await engine.tick(scheduledAt: origin + max(at, finished))
                            case .deaths: await engine.checkDeaths(scheduledAt: origin + max(at, finished))
                            }
                        finished = clock.now - origin
                        deathDue = untilDeath.map { finished + $0 }
                        schedule.ran(run, finishedAt: finished)
                    }
                }
            }
        } onCancelOrGracefulShutdown: {
            // On cancellation too (another service failed): stop the effects, write what is pending and stop.
            effects.stop()
            queue.finish()
        }
    }
}

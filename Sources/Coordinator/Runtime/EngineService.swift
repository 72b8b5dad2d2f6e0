import RuntimeCore
public import ServiceLifecycle
import Storage

/// Runs the engine's background work: the write-behind queue's flusher, the failure detector's ticks, and the
/// engine's side effects (``EffectRunner``).
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
                group.addTask {
                    // Regular ticks on a fixed schedule (their own work does not push the next one back), and the
                    // failure detector alone at a member's death deadline when that comes first.
                    let clock = ContinuousClock()
                    var next = clock.now + tick
                    while !Task.isShuttingDownGracefully, !Task.isCancelled {
                        if let death = await engine.untilNextDeath(), clock.now + death < next {
                            try? await Task.sleep(for: max(death, .milliseconds(1)))
                            await engine.checkDeaths()
                            continue
                        }
                        try? await Task.sleep(until: next, clock: clock)
                        await engine.tick()
                        // Behind (a tick longer than the interval, a stall): the schedule starts over with a whole
                        // interval rather than catching up with ticks back to back.
                        next += tick
                        if next <= clock.now { next = clock.now + tick }
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

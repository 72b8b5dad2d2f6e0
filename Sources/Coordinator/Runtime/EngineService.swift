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
                    while !Task.isShuttingDownGracefully, !Task.isCancelled {
                        try? await Task.sleep(for: tick)
                        await engine.tick()
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

/// Runs the engine's side effects (manifest writes, object deletes, pushes, answers to parked calls, sweeps) as child
/// tasks of one service, instead of loose `Task {}`s: shutdown ends them by design.
///
/// The engine submits an effect and carries on; ``run()`` (the engine service runs it) starts each one at once,
/// concurrently with the others. ``stop()`` (at shutdown, before the write-behind queue writes what is pending)
/// refuses new effects and cancels the running ones; `run()` returns once they have returned. Every effect tolerates
/// cancellation by design: what it leaves undone is picked up after a restart (commits whose parts were all reported
/// resume; the start-up sweep deletes what a delete left), and pushes and answers are moot once streams and parked
/// calls are closed.
public final class EffectRunner: Sendable {
    private let effects: AsyncStream<@Sendable () async -> Void>
    private let continuation: AsyncStream<@Sendable () async -> Void>.Continuation

    /// A runner; nothing runs until ``run()``.
    public init() {
        (effects, continuation) = AsyncStream.makeStream()
    }

    /// Runs `effect` soon (dropped once the runner was stopped).
    func submit(_ effect: @escaping @Sendable () async -> Void) {
        continuation.yield(effect)
    }

    /// Runs every submitted effect until ``stop()``, then cancels those still running and returns when they have.
    public func run() async {
        await withDiscardingTaskGroup { group in
            for await effect in effects {
                group.addTask { await effect() }
            }
            group.cancelAll()
        }
    }

    /// No more effects: the running ones are cancelled, and ``run()`` returns once they have returned.
    public func stop() {
        continuation.finish()
    }
}

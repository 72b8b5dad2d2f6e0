/// Asks workers for heartbeats at a steady rate, each once per interval, spread evenly over the interval (as
/// independent processes started at different moments would be), from one task instead of one timer per worker.
public enum HeartbeatPacer {
    /// How finely the interval is divided: every slot's workers are asked together.
    static let slot = Duration.milliseconds(5)

    /// Asks each worker for a heartbeat every `interval` until `end` (or cancellation). A pacer that falls behind
    /// (a busy machine) catches up at once rather than skipping.
    public static func run(
        _ workers: [SimulatedWorker], interval: Duration, until end: ContinuousClock.Instant
    ) async {
        await run(count: workers.count, interval: interval, until: end) { workers[$0].beat() }
    }

    /// The same pacing for anything: rings each of `count` indices every `interval` until `end` (or cancellation),
    /// spread over the interval in the same slots (the benchmarks' no-op floor is paced exactly as the workers are).
    public static func run(
        count: Int, interval: Duration, until end: ContinuousClock.Instant, ring: (Int) -> Void
    ) async {
        guard count > 0 else { return }
        let clock = ContinuousClock()
        let slots = max(1, Int(interval / slot))
        var due = clock.now
        var index = 0
        while due < end, !Task.isCancelled {
            // The indices of this slot: those that fall in it, spread round-robin.
            for position in stride(from: index % slots, to: count, by: slots) { ring(position) }
            index += 1
            due = due + interval / slots
            if due > clock.now { try? await Task.sleep(until: due, clock: clock) }
        }
    }
}

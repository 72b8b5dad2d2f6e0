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
        guard !workers.isEmpty else { return }
        let clock = ContinuousClock()
        let slots = max(1, Int(interval / slot))
        var due = clock.now
        var index = 0
        while due < end, !Task.isCancelled {
            // The workers of this slot: those whose index falls in it, spread round-robin.
            for position in stride(from: index % slots, to: workers.count, by: slots) {
                workers[position].beat()
            }
            index += 1
            due = due + interval / slots
            if due > clock.now { try? await Task.sleep(until: due, clock: clock) }
        }
    }
}

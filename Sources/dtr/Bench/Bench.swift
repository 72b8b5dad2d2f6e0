import ArgumentParser

/// `dtr bench ...`: the benchmarks whose results go to bench/RESULTS.md. Build with `-c release` to run them.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (build with -c release): each prints a Markdown report with its baselines.",
        subcommands: [PlacementBench.self, LedgerBench.self, BarrierBench.self, SwarmBench.self, RecoveryProbe.self])
}

/// Times `body` on a fresh value from `setup` (not timed) `repetitions` times; returns the median and the last value.
func measure<T>(repetitions: Int, setup: () -> T, _ body: (inout T) -> Void) -> (median: Duration, result: T) {
    var durations: [Duration] = []
    var value = setup()
    for index in 0..<max(1, repetitions) {
        if index > 0 { value = setup() }
        let start = ContinuousClock.now
        body(&value)
        durations.append(ContinuousClock.now - start)
    }
    return (durations.sorted()[durations.count / 2], value)
}

/// Times `body` `repetitions` times and returns the median duration and the last result.
func measure<T>(repetitions: Int, _ body: () -> T) -> (median: Duration, result: T) {
    var durations: [Duration] = []
    var result: T?
    for _ in 0..<max(1, repetitions) {
        let start = ContinuousClock.now
        result = body()
        durations.append(ContinuousClock.now - start)
    }
    return (durations.sorted()[durations.count / 2], result!)
}

extension Duration {
    /// Milliseconds with two decimals, for reports.
    var report: String {
        let (seconds, attoseconds) = components
        let milliseconds = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        return String(format: "%.2f ms", milliseconds)
    }

    /// `self / other` as a number.
    func ratio(to other: Duration) -> Double {
        let a = components
        let b = other.components
        return (Double(a.seconds) + Double(a.attoseconds) / 1e18)
            / max(1e-12, Double(b.seconds) + Double(b.attoseconds) / 1e18)
    }
}

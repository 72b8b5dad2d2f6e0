public import Prometheus
public import RuntimeCore
import Synchronization

/// The coordinator's metrics: recorded into a swift-prometheus registry (served at `/metrics`), and kept as latency
/// histograms and rates for the JSON of `/api/metrics`.
///
/// The registry is used directly rather than through swift-metrics' global API: every family needs a `# HELP` line
/// (promtool rejects the exposition without one), which swift-metrics' instruments cannot carry, and a registry per
/// coordinator keeps two coordinators in one process (tests) apart.
///
/// Counters and timers are recorded where things happen (RPCs, heartbeats, barriers, checkpoints); gauges of state
/// (workers by health, tasks by status) are set from the engine right before each scrape.
public final class CoordinatorMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    private let heartbeats: Counter
    private let barrierWait: DurationHistogram
    private let barrierRelease: DurationHistogram
    private let checkpointCommit: DurationHistogram
    private let checkpointBytes: Counter
    private let rateLimitedHTTP: Counter
    private let rateLimitedGRPC: Counter
    private let eventClientsDropped: Counter
    private let state: Mutex<State>

    private struct State {
        var rpcs: [String: RPCFigures] = [:]
        var rpcTimers: [String: DurationHistogram] = [:]
        var rpcErrors: [String: Counter] = [:]
        var outcomes: [String: Counter] = [:]
        var gauges: [String: Gauge] = [:]
        var heartbeatsTotal = 0
        /// Heartbeats per whole second of monotonic time, for the last `rateWindow` seconds.
        var heartbeatSeconds: [Int64: Int] = [:]
        var checkpointLatency = LatencyHistogram()
    }

    /// One RPC method's figures for `/api/metrics`.
    public struct RPCFigures: Sendable {
        /// Calls and their latencies.
        public var latency = LatencyHistogram()
        /// Calls that failed, by status code name.
        public var errors: [String: Int] = [:]
    }

    /// Seconds over which `/api/metrics` averages the heartbeat rate.
    static let rateWindow: Int64 = 10

    /// 100 µs to 100 s: RPCs and barrier releases are sub-millisecond, checkpoints take seconds to minutes.
    static let buckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10), .seconds(30),
        .seconds(60), .seconds(100),
    ]

    /// Every metric family: its name after `dtr_`, its unit suffix, and its help text.
    static let families: [String: (name: String, unit: String, help: String)] = [
        "heartbeats": ("heartbeats", "total", "Heartbeats received (unary and on session streams)."),
        "rpc_duration": ("rpc_duration", "seconds", "Duration of unary RPCs, by method."),
        "rpc_errors": ("rpc_errors", "total", "Failed RPCs, by method and gRPC status code."),
        "barrier_wait": ("barrier_wait", "seconds", "Each participant's wait from arrival to release."),
        "barrier_release": ("barrier_release", "seconds", "A barrier generation's last arrival to its release."),
        "barriers": ("barriers", "total", "Barrier generations ended, by outcome (released or the failure code)."),
        "checkpoint_commit": ("checkpoint_commit", "seconds", "Checkpoints' opening to commit."),
        "checkpoint_bytes": ("checkpoint_bytes", "total", "Bytes of committed checkpoints."),
        "checkpoints": ("checkpoints", "total", "Checkpoints ended, by outcome (committed or aborted)."),
        "workers": ("workers", "", "Known workers, by health."),
        "tasks": ("tasks", "", "Tasks, by status."),
        "task_world_size": ("task_world_size", "", "Members of each task."),
        "membership_epoch": ("membership_epoch", "", "Each task's membership epoch."),
        "sessions": ("sessions", "", "Open worker session streams."),
        "barriers_open": ("barriers_open", "", "Barrier generations waiting for arrivals."),
        "checkpoints_pending": ("checkpoints_pending", "", "Checkpoints waiting for parts."),
        "uptime": ("uptime", "seconds", "Time since the coordinator started."),
        "scheduling_lag": (
            "scheduling_lag", "seconds",
            "How far behind the coordinator's threads ran at the failure detector's last run "
                + "(its timeouts were extended by that much, at most by the dead timeout)."
        ),
        "event_clients": ("event_clients", "", "Open GET /api/events streams."),
        "event_clients_dropped": (
            "event_clients_dropped", "total",
            "Event streams closed because the client read more slowly than events came."
        ),
        "rate_limited": (
            "rate_limited", "total", "Requests refused by the rate limits (429 or RESOURCE_EXHAUSTED), by protocol."
        ),
    ]

    static func descriptor(_ family: String) -> MetricNameDescriptor {
        let (name, unit, help) = families[family] ?? (family, "", family)
        return MetricNameDescriptor(namespace: "dtr", metricName: name, unitName: unit, helpText: help)
    }

    /// Creates the metrics with their own registry.
    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        heartbeats = registry.makeCounter(descriptor: Self.descriptor("heartbeats"), labels: [])
        barrierWait = registry.makeDurationHistogram(
            descriptor: Self.descriptor("barrier_wait"), labels: [], buckets: Self.buckets)
        barrierRelease = registry.makeDurationHistogram(
            descriptor: Self.descriptor("barrier_release"), labels: [], buckets: Self.buckets)
        checkpointCommit = registry.makeDurationHistogram(
            descriptor: Self.descriptor("checkpoint_commit"), labels: [], buckets: Self.buckets)
        checkpointBytes = registry.makeCounter(descriptor: Self.descriptor("checkpoint_bytes"), labels: [])
        rateLimitedHTTP = registry.makeCounter(
            descriptor: Self.descriptor("rate_limited"), labels: [("protocol", "http")])
        rateLimitedGRPC = registry.makeCounter(
            descriptor: Self.descriptor("rate_limited"), labels: [("protocol", "grpc")])
        eventClientsDropped = registry.makeCounter(descriptor: Self.descriptor("event_clients_dropped"), labels: [])
        state = Mutex(State())
    }

    // MARK: Recording

    /// An RPC finished: how long it took and, if it failed, its status code.
    public func recordRPC(_ method: String, duration: Duration, error code: String?) {
        let (timer, errors) = state.withLock { state in
            state.rpcs[method, default: RPCFigures()].latency.record(duration)
            if let code { state.rpcs[method, default: RPCFigures()].errors[code, default: 0] += 1 }
            let timer =
                state.rpcTimers[method]
                ?? registry.makeDurationHistogram(
                    descriptor: Self.descriptor("rpc_duration"), labels: [("method", method)], buckets: Self.buckets)
            state.rpcTimers[method] = timer
            var errors: Counter?
            if let code {
                let key = "\(method)/\(code)"
                errors =
                    state.rpcErrors[key]
                    ?? registry.makeCounter(
                        descriptor: Self.descriptor("rpc_errors"), labels: [("method", method), ("code", code)])
                state.rpcErrors[key] = errors
            }
            return (timer, errors)
        }
        timer.record(duration)
        errors?.increment()
    }

    /// A rate limit refused an HTTP request (`http`) or a gRPC call (otherwise).
    public func recordRateLimited(http: Bool) {
        (http ? rateLimitedHTTP : rateLimitedGRPC).increment()
    }

    /// An event stream's client fell behind and was disconnected.
    public func recordEventClientDropped() {
        eventClientsDropped.increment()
    }

    /// A heartbeat arrived (unary or on a session stream) at monotonic time `now`.
    public func recordHeartbeat(at now: Duration) {
        let second = now.components.seconds
        state.withLock { state in
            state.heartbeatsTotal += 1
            state.heartbeatSeconds[second, default: 0] += 1
            if state.heartbeatSeconds.count > Int(Self.rateWindow) + 2 {
                state.heartbeatSeconds = state.heartbeatSeconds.filter { $0.key > second - Self.rateWindow - 1 }
            }
        }
        heartbeats.increment()
    }

    /// A barrier generation released or failed.
    public func recordBarrier(outcome: String, release: Duration?, waits: [Duration]) {
        outcomeCounter("barriers", outcome).increment()
        if let release { barrierRelease.record(release) }
        for wait in waits { barrierWait.record(wait) }
    }

    /// A checkpoint committed (with its latency and bytes) or aborted.
    public func recordCheckpoint(outcome: String, latency: Duration?, bytes: Int64) {
        outcomeCounter("checkpoints", outcome).increment()
        if let latency {
            checkpointCommit.record(latency)
            state.withLock { $0.checkpointLatency.record(latency) }
        }
        if bytes > 0 { checkpointBytes.increment(by: bytes) }
    }

    /// Sets a gauge of state, by family (e.g. `workers` with `status=healthy`).
    public func setGauge(_ family: String, _ labels: [(String, String)], to value: Double) {
        let key = ([family] + labels.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
        let gauge = state.withLock { state in
            let gauge = state.gauges[key] ?? registry.makeGauge(descriptor: Self.descriptor(family), labels: labels)
            state.gauges[key] = gauge
            return gauge
        }
        gauge.set(to: value)
    }

    // MARK: Reading

    /// Every RPC method's figures.
    public var rpcFigures: [String: RPCFigures] { state.withLock { $0.rpcs } }

    /// Heartbeats since start-up.
    public var heartbeatsTotal: Int { state.withLock { $0.heartbeatsTotal } }

    /// Heartbeats per second over the last complete seconds of the window ending at `now`.
    public func heartbeatRate(at now: Duration) -> Double {
        let current = now.components.seconds
        let counted = state.withLock { state in
            state.heartbeatSeconds.filter { $0.key < current && $0.key >= current - Self.rateWindow }.values
                .reduce(0, +)
        }
        return Double(counted) / Double(Self.rateWindow)
    }

    /// Commit latencies of checkpoints.
    public var checkpointLatency: LatencyHistogram { state.withLock { $0.checkpointLatency } }

    /// The Prometheus text exposition of every metric.
    public func prometheusText() -> String { registry.emitToString() }

    private func outcomeCounter(_ family: String, _ outcome: String) -> Counter {
        state.withLock { state in
            let key = "\(family)/\(outcome)"
            let counter =
                state.outcomes[key]
                ?? registry.makeCounter(descriptor: Self.descriptor(family), labels: [("outcome", outcome)])
            state.outcomes[key] = counter
            return counter
        }
    }
}

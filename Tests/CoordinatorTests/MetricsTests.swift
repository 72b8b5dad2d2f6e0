import Coordinator
import Testing

@Suite("Metrics")
struct MetricsTests {
    @Test("the heartbeat rate averages the last ten whole seconds")
    func heartbeatRate() {
        let metrics = CoordinatorMetrics()
        for second in 0..<10 { metrics.recordHeartbeat(at: .seconds(second) + .milliseconds(300)) }
        #expect(metrics.heartbeatRate(at: .seconds(10)) == 1)
        #expect(metrics.heartbeatRate(at: .seconds(9)) == 0.9, "the current second is not complete yet")
        for second in 10..<20 {
            for _ in 0..<5 { metrics.recordHeartbeat(at: .seconds(second) + .milliseconds(300)) }
        }
        #expect(metrics.heartbeatsTotal == 10 + 50)
        #expect(metrics.heartbeatRate(at: .seconds(20)) == 5)
        #expect(metrics.heartbeatRate(at: .milliseconds(19_500)) == 4.6, "seconds 9-18: one at 1, nine at 5")
    }

    @Test("RPCs, barriers, checkpoints and gauges appear in the exposition with help and type lines")
    func exposition() {
        let metrics = CoordinatorMetrics()
        metrics.recordRPC("Heartbeat", duration: .milliseconds(2), error: nil)
        metrics.recordRPC("Heartbeat", duration: .milliseconds(3), error: "not_found")
        metrics.recordBarrier(outcome: "released", release: .microseconds(300), waits: [.milliseconds(1)])
        metrics.recordCheckpoint(outcome: "committed", latency: .seconds(2), bytes: 4096)
        metrics.setGauge("workers", [("status", "healthy")], to: 3)
        let text = metrics.prometheusText()
        for line in [
            "# HELP dtr_rpc_duration_seconds Duration of unary RPCs, by method.",
            "# TYPE dtr_rpc_duration_seconds histogram", #"dtr_rpc_duration_seconds_count{method="Heartbeat"} 2"#,
            #"dtr_rpc_errors_total{method="Heartbeat",code="not_found"} 1"#,
            #"dtr_barriers_total{outcome="released"} 1"#,
            "dtr_barrier_release_seconds_count 1", "dtr_checkpoint_bytes_total 4096",
            #"dtr_checkpoints_total{outcome="committed"} 1"#, #"dtr_workers{status="healthy"} 3.0"#,
        ] {
            #expect(text.contains(line + "\n"), "\(line)")
        }
        #expect(metrics.rpcFigures["Heartbeat"]?.errors == ["not_found": 1])
        #expect(metrics.checkpointLatency.count == 1)
    }
}

import ArgumentParser
import Coordinator
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import RuntimeCore
import RuntimeProto
import ServiceLifecycle
import Synchronization

/// `dtr bench barrier`: a barrier's release latency and an allreduce's throughput, against the same gRPC stack
/// doing no barrier work at all (a gate that parks calls and releases them; an echo), measured in the same run on
/// one coordinator over loopback.
struct BarrierBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "barrier",
        abstract: "Barrier release latency and allreduce throughput against no-op RPCs on the same server.")

    @Option(help: "Participants of the fan-out barrier.") var workers = 1024
    @Option(help: "Rounds of each fan-out measurement.") var rounds = 30
    @Option(help: "Participants of the allreduce.") var reduceWorkers = 8
    @Option(help: "float32 values per allreduce participant.") var reduceLength = 1_000_000
    @Option(help: "Rounds of each allreduce measurement.") var reduceRounds = 10

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dtr-bench-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var logger = Logger(label: "dtr-bench")
        logger.logLevel = .error
        // No rate limit: one client sends thousands of calls at once, on purpose.
        let config = CoordinatorConfig(
            grpcPort: 0, httpPort: 0, dataDir: directory,
            membership: try MembershipConfig(
                heartbeatInterval: .seconds(60), suspectAfter: .seconds(600), deadAfter: .seconds(1200)),
            grpcRateLimit: 0)
        let gate = Gate()
        let runtime = try buildCoordinator(config: config, logger: logger, extraServices: [BenchService(gate: gate)])
        let group = ServiceGroup(services: runtime.services, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { services in
            services.addTask { try await group.run() }
            let ports = try await runtime.waitUntilListening()
            let report = try await withGRPCClient(
                transport: try .http2NIOPosix(
                    target: .ipv4(address: "127.0.0.1", port: ports.grpc), transportSecurity: .plaintext)
            ) { client in
                try await measure(client: client, engine: runtime.engine, gate: gate)
            }
            print(report)
            await group.triggerGracefulShutdown()
            try await services.waitForAll()
        }
    }

    // MARK: Measurements

    private func measure(client: GRPCClient<HTTP2ClientTransport.Posix>, engine: CoordinatorEngine, gate: Gate)
        async throws -> String
    {
        let coordinator = Dtruntime_V1_Coordinator.Client(wrapping: client)
        var fanOutEpoch: UInt64 = 0
        // Each worker's secret, sent in its arrivals (one stream carries the calls of every worker).
        var secrets: [String: String] = [:]
        for index in 0..<workers {
            let reply = try await coordinator.registerWorker(Self.registration("fan-\(index)", task: "fanout"))
            fanOutEpoch = reply.view.membershipEpoch
            secrets["fan-\(index)"] = reply.workerSecret
        }
        var reduceEpoch: UInt64 = 0
        for index in 0..<reduceWorkers {
            let reply = try await coordinator.registerWorker(Self.registration("reduce-\(index)", task: "reduce"))
            reduceEpoch = reply.view.membershipEpoch
            secrets["reduce-\(index)"] = reply.workerSecret
        }
        let keys = secrets

        // Fan-out: n-1 callers parked, then the last arrival; time until every caller has its reply.
        var barrier = Samples()
        var streamed = Samples()
        var floor = Samples()
        let epoch = fanOutEpoch
        for round in 0..<rounds + 1 {
            let released = try await fanOut(
                park: { index in
                    _ = try await coordinator.barrierSync(Self.arrival("fan-\(index)", epoch: epoch, secrets: keys))
                },
                parked: { await engine.barrierStatus().open.first?.arrived ?? 0 },
                last: {
                    _ = try await coordinator.barrierSync(
                        Self.arrival("fan-\(workers - 1)", epoch: epoch, secrets: keys))
                })
            let gated = try await fanOut(
                park: { _ in _ = try await Self.raw(client, BenchService.wait, []) },
                parked: { gate.count },
                last: { _ = try await Self.raw(client, BenchService.open, []) })
            let releasedOnStream = try await fanOutOnStream(coordinator, engine: engine, epoch: epoch, secrets: keys)
            if round > 0 {  // the first round warms up connections and allocations
                barrier.append(released)
                streamed.append(releasedOnStream)
                floor.append(gated)
            }
        }

        // Allreduce: every participant sends and receives `reduceLength` float32 values.
        let values = [Float](repeating: 1.5, count: reduceLength)
        let payload = values.withUnsafeBytes { Data($0) }
        let bytes = [UInt8](payload)
        var reduce = Samples()
        var echo = Samples()
        for round in 0..<reduceRounds + 1 {
            let reduceEpoch = reduceEpoch
            let reduced = try await timeAll(reduceWorkers) { index in
                let reply = try await coordinator.barrierSync(
                    .with {
                        $0.name = "allreduce"
                        $0.workerID = "reduce-\(index)"
                        $0.workerSecret = keys["reduce-\(index)"] ?? ""
                        $0.membershipEpoch = reduceEpoch
                        $0.payload = .with {
                            $0.op = .sum
                            $0.dtype = .float32
                            $0.data = payload
                        }
                    })
                precondition(reply.result.data.count == payload.count, "allreduce returned a short vector")
            }
            let echoed = try await timeAll(reduceWorkers) { _ in
                let reply = try await Self.raw(client, BenchService.echo, bytes)
                precondition(reply.count == bytes.count, "echo returned a short message")
            }
            if round > 0 {
                reduce.append(reduced)
                echo.append(echoed)
            }
        }

        let megabytes = Double(reduceLength * 4) / 1e6
        return """
            `dtr bench barrier --workers \(workers) --rounds \(rounds) --reduce-workers \(reduceWorkers) \
            --reduce-length \(reduceLength)` (one coordinator, one client connection, loopback)

            | measurement | p50 | p99 | ratio to the no-op floor (p99; target) |
            | --- | --- | --- | --- |
            | release of \(workers) waiters: last arrival → last reply | \(barrier.p(0.5).report) | \
            \(barrier.p(0.99).report) | \(String(format: "%.2f", barrier.p(0.99).ratio(to: floor.p(0.99))))× (≤ 1.5×) |
            | the same \(workers) calls on one BarrierStream (what the SDK sends) | \(streamed.p(0.5).report) | \
            \(streamed.p(0.99).report) | \(String(format: "%.2f", streamed.p(0.99).ratio(to: floor.p(0.99))))× |
            | floor: \(workers) parked no-op calls released by one call | \(floor.p(0.5).report) | \
            \(floor.p(0.99).report) | 1.00× |
            | allreduce SUM of \(reduceLength) float32 (\(String(format: "%.1f", megabytes)) MB) × \(reduceWorkers) \
            workers | \(reduce.p(0.5).report) | \(reduce.p(0.99).report) | \
            \(String(format: "%.2f", reduce.p(0.5).ratio(to: echo.p(0.5))))× at p50 (≤ 3×) |
            | floor: \(reduceWorkers) concurrent echoes of the same bytes | \(echo.p(0.5).report) | \
            \(echo.p(0.99).report) | 1.00× |
            """
    }

    /// Parks `workers - 1` calls, waits until the server holds them all, then makes the last call; returns the time
    /// from the last call until every call has its reply.
    private func fanOut(
        park: @escaping @Sendable (Int) async throws -> Void, parked: @escaping @Sendable () async -> Int,
        last: @escaping @Sendable () async throws -> Void
    ) async throws -> Duration {
        let clock = ContinuousClock()
        return try await withThrowingTaskGroup(of: ContinuousClock.Instant.self) { group in
            for index in 0..<workers - 1 {
                group.addTask {
                    try await park(index)
                    return clock.now
                }
            }
            while await parked() < workers - 1 { try await Task.sleep(for: .microseconds(200)) }
            let start = clock.now
            group.addTask {
                try await last()
                return clock.now
            }
            var latest = start
            for try await done in group { latest = max(latest, done) }
            return latest - start
        }
    }

    /// The fan-out over one BarrierStream: `workers - 1` arrivals parked, then the last; returns the time from the last
    /// arrival until every call has its answer.
    private func fanOutOnStream(
        _ coordinator: Dtruntime_V1_Coordinator.Client<HTTP2ClientTransport.Posix>, engine: CoordinatorEngine,
        epoch: UInt64, secrets: [String: String]
    ) async throws -> Duration {
        let workers = workers
        let clock = ContinuousClock()
        let start = Mutex<ContinuousClock.Instant?>(nil)
        let end = try await coordinator.barrierStream(
            requestProducer: { writer in
                // Every arrival but the last in one message (as the SDK sends arrivals that wait together), then the
                // last one alone once the others are parked.
                let calls = (0..<workers).map { index in
                    Dtruntime_V1_BarrierStreamCall.with {
                        $0.callID = UInt64(index)
                        $0.arrival = Self.arrival("fan-\(index)", epoch: epoch, secrets: secrets)
                    }
                }
                try await writer.write(.with { $0.calls = Array(calls.dropLast()) })
                while await engine.barrierStatus().open.first?.arrived ?? 0 < workers - 1 {
                    try await Task.sleep(for: .microseconds(200))
                }
                start.withLock { $0 = clock.now }
                try await writer.write(.with { $0.calls = [calls[workers - 1]] })
            },
            onResponse: { response in
                var answered = 0
                for try await reply in response.messages {
                    precondition(reply.hasResponse, "a streamed barrier call failed: \(reply.message)")
                    answered += reply.callIds.count
                    if answered == workers { return clock.now }
                }
                throw RPCError(code: .internalError, message: "the barrier stream ended before every call's answer")
            })
        return end - (start.withLock { $0 } ?? end)
    }

    /// Runs `count` calls at once; returns the time until the last one finished.
    private func timeAll(_ count: Int, _ call: @escaping @Sendable (Int) async throws -> Void) async throws -> Duration
    {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count { group.addTask { try await call(index) } }
            try await group.waitForAll()
        }
        return ContinuousClock.now - start
    }

    private static func raw(
        _ client: GRPCClient<HTTP2ClientTransport.Posix>, _ method: MethodDescriptor, _ bytes: [UInt8]
    )
        async throws -> [UInt8]
    {
        try await client.unary(
            request: ClientRequest(message: bytes), descriptor: method, serializer: RawBytes(),
            deserializer: RawBytes(),
            options: .defaults
        ) { try $0.message }
    }

    private static func registration(_ id: String, task: String) -> Dtruntime_V1_RegisterWorkerRequest {
        .with {
            $0.workerID = id
            $0.host = "127.0.0.1"
            $0.port = 1
            $0.taskID = task
        }
    }

    private static func arrival(_ id: String, epoch: UInt64, secrets: [String: String])
        -> Dtruntime_V1_BarrierSyncRequest
    {
        .with {
            $0.name = "fan-out"
            $0.workerID = id
            $0.membershipEpoch = epoch
            $0.workerSecret = secrets[id] ?? ""
        }
    }
}

/// Durations of repeated measurements.
struct Samples {
    private var values: [Duration] = []

    mutating func append(_ value: Duration) { values.append(value) }

    /// The `quantile` sample (nearest rank).
    func p(_ quantile: Double) -> Duration {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .zero }
        return sorted[min(sorted.count - 1, Int((quantile * Double(sorted.count)).rounded(.up)) - 1)]
    }
}

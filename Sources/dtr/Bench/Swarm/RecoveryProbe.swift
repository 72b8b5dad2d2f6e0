import ArgumentParser
import AsyncHTTPClient
import Foundation
import GRPCCore
import RuntimeProto
import Swarm
import Synchronization

/// `dtr bench recovery-probe` (hidden): the `recovery` scenario's client of the restarted coordinator, in a process of
/// its own, as the dashboard or a new worker would be. In the benchmark's process its calls would queue behind the
/// ten thousand simulated workers' own tasks, and time the benchmark's congestion rather than the coordinator's.
///
/// It asks for `GET /api/health` every 2 ms until it answers, then, on a new connection, sends a unary `Heartbeat`
/// of `--worker-id` (its secret in `DTR_PROBE_SECRET`): one at a time every 2 ms until one is answered, then one every
/// 10 ms on a fixed schedule, each on a task of its own (a stalled call does not hold back the next, so the calls
/// sample the coordinator's responsiveness evenly in time), until it is terminated or its parent is gone. With
/// `--echo`, the call is the benchmarks' no-op `Echo` of a message of the same size instead (the floor).
///
/// Each event is a line written to `--out`, times on `CLOCK_MONOTONIC` in nanoseconds (the clock the benchmark reads
/// too): `started T`, `health T`, then for each call `sent SENT` and, once it is over, `rpc SENT ANSWERED` or
/// `failed SENT AT CODE` (refused with a status code, no answer within 30 s (`deadlineExceeded`), or a local
/// error, named by its type).
struct RecoveryProbe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recovery-probe", abstract: "The recovery scenario's probe (started by it).", shouldDisplay: false)

    @Option(help: "The coordinator's gRPC HOST:PORT.") var grpc: String
    @Option(help: "The coordinator's HTTP base URL.") var http: String
    @Option(help: "A registered worker whose Heartbeat the probe sends.") var workerId: String
    @Option(help: "Where the events go (a line each).") var out: String
    @Flag(help: "Send the no-op Echo (needs --bench-noop-service) instead of Heartbeat.") var echo = false

    func run() async throws {
        guard let address = BenchCoordinator.hostPort(grpc) else {
            throw ValidationError("--grpc must be HOST:PORT (got \(grpc))")
        }
        let log = try EventLog(path: out)
        log.write { "started \($0)" }
        let parent = getppid()
        try await waitForHealth(parent: parent)
        log.write { "health \($0)" }
        var metadata: Metadata = [:]
        metadata.addString(ProcessInfo.processInfo.environment["DTR_PROBE_SECRET"] ?? "", forKey: "dtr-worker-secret")
        let connections = try SwarmConnections(
            target: SwarmTarget(host: address.host, port: address.port), connections: 1)
        let running = Task { try await connections.run() }
        let call = Call(
            connections: connections, metadata: metadata, echo: echo,
            request: Dtruntime_V1_HeartbeatRequest.with { $0.workerID = workerId }, log: log)
        // One at a time until the coordinator answers.
        while !ParentWatch.isGone(parent: parent), await !call.send() {
            try await Task.sleep(for: .milliseconds(2))
        }
        // Then on a fixed schedule.
        await withDiscardingTaskGroup { group in
            var next = ContinuousClock.now
            while !ParentWatch.isGone(parent: parent) {
                group.addTask { _ = await call.send() }
                next = Self.nextSend(after: next, now: .now)
                try? await Task.sleep(until: next)
            }
            group.cancelAll()
        }
        connections.shutdown()
        try await running.value
    }

    /// When the call after one due at `due` is sent, at `now`: 10 ms after it, or at once if that has passed (the
    /// probe's own process stalled), without a burst of the calls it missed: the calls keep sampling evenly in time.
    static func nextSend(
        after due: ContinuousClock.Instant, now: ContinuousClock.Instant, every interval: Duration = .milliseconds(10)
    ) -> ContinuousClock.Instant {
        max(due + interval, now)
    }

    private func waitForHealth(parent: pid_t) async throws {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .milliseconds(100), read: .seconds(2))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline, !ParentWatch.isGone(parent: parent) {
            var request = HTTPClientRequest(url: http + "/api/health")
            request.method = .GET
            if let response = try? await client.execute(request, timeout: .seconds(2)), response.status == .ok {
                try await client.shutdown()
                return
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
        try await client.shutdown()
        throw BenchFailure(
            "the restarted coordinator did not answer \(http)/api/health within 120 s (or the benchmark ended); "
                + "the benchmark's report gives the errors in the coordinator's log")
    }

    /// One of the probe's calls, sent and logged.
    private struct Call: Sendable {
        let connections: SwarmConnections
        let metadata: Metadata
        let echo: Bool
        let request: Dtruntime_V1_HeartbeatRequest
        let log: EventLog

        /// Sends the call and logs it; true if it was answered.
        func send() async -> Bool {
            let sent = log.write { "sent \($0)" }
            var options = CallOptions.defaults
            options.timeout = .seconds(30)
            do {
                if echo {
                    try await connections.client(0).unary(
                        request: ClientRequest(message: try request.serializedBytes() as [UInt8], metadata: metadata),
                        descriptor: BenchService.echo, serializer: RawBytes(), deserializer: RawBytes(),
                        options: options
                    ) { _ = try $0.message }
                } else {
                    _ = try await connections.stub(0).heartbeat(request, metadata: metadata, options: options)
                }
                log.write { "rpc \(sent) \($0)" }
                return true
            } catch let error as RPCError {
                log.write { "failed \(sent) \($0) \(error.code)" }
            } catch {
                let kind = String(describing: type(of: error)).replacingOccurrences(of: " ", with: "_")
                log.write { "failed \(sent) \($0) \(kind)" }
            }
            return false
        }
    }

    /// The events file: whole lines, from any task.
    private final class EventLog: Sendable {
        private let file: Mutex<FileHandle>

        init(path: String) throws {
            let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            guard descriptor >= 0 else {
                throw ValidationError(
                    "cannot create --out \(path): \(String(cString: strerror(errno))) (is its directory there and "
                        + "writable?)")
            }
            file = Mutex(FileHandle(fileDescriptor: descriptor, closeOnDealloc: true))
        }

        /// Writes the line `line` makes of the time now, and returns that time. The time is taken under the lock, so
        /// the lines are in the order of their times: once the benchmark reads a line of a later time, every call
        /// sent before it is in the file.
        @discardableResult
        func write(_ line: (Int64) -> String) -> Int64 {
            file.withLock { file in
                let now = monotonicNanoseconds()
                // A probe that cannot write its events has nothing to report: the benchmark sees the missing lines.
                try? file.write(contentsOf: Data((line(now) + "\n").utf8))
                return now
            }
        }
    }
}

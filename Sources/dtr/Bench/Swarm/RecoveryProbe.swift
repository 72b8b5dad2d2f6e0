import ArgumentParser
import AsyncHTTPClient
import Foundation
import GRPCCore
import RuntimeProto
import Swarm

/// `dtr bench recovery-probe` (hidden): the `recovery` scenario's client of the restarted coordinator, in a process of
/// its own, as the dashboard or a new worker would be. In the benchmark's process its calls would queue behind the
/// ten thousand simulated workers' own tasks, and time the benchmark's congestion rather than the coordinator's.
///
/// It asks for `GET /api/health` every 2 ms until it answers, then, on a new connection, sends a unary `Heartbeat`
/// of `--worker-id` (its secret in `DTR_PROBE_SECRET`) every 10 ms (every 2 ms until the first is answered) until it
/// is terminated, or its parent is gone. With `--echo`, the call is the benchmarks' no-op `Echo` of a message of the
/// same size instead (the floor). Each event is a line written to `--out`, times on `CLOCK_MONOTONIC` in nanoseconds
/// (the clock the benchmark reads too): `health T`, then `rpc SENT ANSWERED` for every call answered and
/// `failed SENT CODE` for every call refused.
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
        guard FileManager.default.createFile(atPath: out, contents: nil),
            let file = FileHandle(forWritingAtPath: out)
        else { throw ValidationError("cannot write \(out)") }
        let log = { (line: String) in file.write(Data((line + "\n").utf8)) }
        let parent = getppid()
        try await waitForHealth(parent: parent)
        log("health \(monotonicNanoseconds())")
        var metadata: Metadata = [:]
        metadata.addString(ProcessInfo.processInfo.environment["DTR_PROBE_SECRET"] ?? "", forKey: "dtr-worker-secret")
        let request = Dtruntime_V1_HeartbeatRequest.with { $0.workerID = workerId }
        let message: [UInt8] = try request.serializedBytes()
        let connections = try SwarmConnections(
            target: SwarmTarget(host: address.host, port: address.port), connections: 1)
        let running = Task { try await connections.run() }
        var answered = false
        while getppid() == parent {
            let sent = monotonicNanoseconds()
            do {
                if echo {
                    try await connections.client(0).unary(
                        request: ClientRequest(message: message, metadata: metadata), descriptor: BenchService.echo,
                        serializer: RawBytes(), deserializer: RawBytes(), options: .defaults
                    ) { _ = try $0.message }
                } else {
                    _ = try await connections.stub(0).heartbeat(request, metadata: metadata)
                }
                log("rpc \(sent) \(monotonicNanoseconds())")
                answered = true
            } catch let error as RPCError {
                log("failed \(sent) \(error.code)")
            }
            try await Task.sleep(for: .milliseconds(answered ? 10 : 2))
        }
        connections.shutdown()
        try await running.value
    }

    private func waitForHealth(parent: pid_t) async throws {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .milliseconds(100), read: .seconds(2))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline, getppid() == parent {
            var request = HTTPClientRequest(url: http + "/api/health")
            request.method = .GET
            if let response = try? await client.execute(request, timeout: .seconds(2)), response.status == .ok {
                try await client.shutdown()
                return
            }
            try? await Task.sleep(for: .milliseconds(2))
        }
        try await client.shutdown()
        throw BenchFailure("the restarted coordinator did not answer \(http)/api/health (or the benchmark ended)")
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: a clock two processes on one machine share.
func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

extension RecoveryProbe {
    /// What a probe wrote: when health first answered, and each call it sent after that.
    struct Events {
        var health: Int64?
        /// Calls answered: sent, answered (nanoseconds on `CLOCK_MONOTONIC`).
        var answered: [(sent: Int64, answered: Int64)] = []
        /// Calls refused: sent, and the status code.
        var refused: [(sent: Int64, code: String)] = []

        /// Reads the lines of `text`; a last line without its newline (still being written) is left out.
        init(parsing text: String) {
            let complete = text.lastIndex(of: "\n").map { text[..<$0] } ?? ""
            for line in complete.split(separator: "\n") {
                let fields = line.split(separator: " ")
                switch (fields.first, fields.count) {
                case ("health", 2): health = Int64(fields[1])
                case ("rpc", 3):
                    if let sent = Int64(fields[1]), let answered = Int64(fields[2]) {
                        self.answered.append((sent, answered))
                    }
                case ("failed", 3): if let sent = Int64(fields[1]) { refused.append((sent, String(fields[2]))) }
                default: continue
                }
            }
        }
    }

    /// A running probe process (this binary), started before the coordinator it probes.
    struct Running {
        private let process: Process
        private let out: String
        private let errors: String

        /// Starts `dtr bench recovery-probe` against `grpc` and `http`, as `worker` (its id and secret), with `--echo`
        /// if `echo`; its events go to `<directory>/<name>.events`, its standard error to `<directory>/<name>.log`.
        init(
            grpc: SwarmTarget, http: String, worker: SimulatedWorker, echo: Bool = false, directory: String,
            name: String = "probe"
        ) throws {
            out = "\(directory)/\(name).events"
            errors = "\(directory)/\(name).log"
            process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            process.arguments =
                [
                    "bench", "recovery-probe", "--grpc", "\(grpc.host):\(grpc.port)", "--http", http, "--worker-id",
                    worker.id, "--out", out,
                ] + (echo ? ["--echo"] : [])
            var environment = ProcessInfo.processInfo.environment
            environment["DTR_PROBE_SECRET"] = worker.secret
            process.environment = environment
            guard FileManager.default.createFile(atPath: errors, contents: nil) else {
                throw BenchFailure("cannot write \(errors)")
            }
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
            process.standardOutput = FileHandle.nullDevice
            try process.run()
        }

        /// Its events so far.
        var events: Events { Events(parsing: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "") }

        /// Stops the probe and returns its events; throws (with its standard error) if it wrote none.
        func finish() throws -> Events {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            let events = self.events
            guard events.health != nil else {
                let said = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
                throw BenchFailure("the recovery probe saw no answer from the coordinator: \(said)")
            }
            return events
        }
    }
}

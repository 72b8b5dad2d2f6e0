import Coordinator
import Foundation
import Logging
import RuntimeCore
import ServiceLifecycle
import Swarm
import Synchronization

/// The coordinator a swarm scenario runs against: a `dtr serve` child process of this very binary (the default: its
/// CPU and memory are its own, and it can be killed), a coordinator inside this process, or one elsewhere.
final class BenchCoordinator: Sendable {
    /// The gRPC address.
    let grpc: SwarmTarget
    /// The HTTP base URL (`http://host:port`), when known.
    let http: String?
    /// The coordinator's process, when known (for CPU and memory, and to kill it).
    let pid: Int32?
    /// Where its log goes (a child process's standard error).
    let logPath: String?
    /// When a child process's ready line was read (``monotonicNanoseconds()``, by a thread of its own: the benchmark's
    /// tasks may be slow to notice it).
    let readyAt: Int64?
    /// When a child process was started (``monotonicNanoseconds()``, just before it was run).
    let startedAt: Int64?
    private let process: Process?
    private let callgrind: Callgrind?
    private let inProcess: Task<Void, any Error>?
    private let group: ServiceGroup?

    private init(
        grpc: SwarmTarget, http: String?, pid: Int32?, logPath: String?, process: Process?, readyAt: Int64? = nil,
        startedAt: Int64? = nil, callgrind: Callgrind? = nil, inProcess: Task<Void, any Error>? = nil,
        group: ServiceGroup? = nil
    ) {
        self.grpc = grpc
        self.http = http
        self.pid = pid
        self.logPath = logPath
        self.readyAt = readyAt
        self.startedAt = startedAt
        self.process = process
        self.callgrind = callgrind
        self.inProcess = inProcess
        self.group = group
    }

    /// A coordinator that is already running elsewhere.
    static func remote(_ target: SwarmTarget, http: String?, pid: Int32?) -> BenchCoordinator {
        BenchCoordinator(grpc: target, http: http, pid: pid, logPath: nil, process: nil)
    }

    /// Starts `dtr serve` (this binary) on `dataDir` with `arguments` added, and waits for its `dtr ready` line.
    ///
    /// The child shuts down by itself if this process dies. Ports are 0 (free ones) unless `arguments` name them; its
    /// standard error goes to `<dataDir>/coordinator.log` (appended to, so that a restarted coordinator's log follows
    /// the first one's). With `callgrind`, a directory, it runs under valgrind's callgrind (``Callgrind``).
    static func spawn(
        dataDir: String, arguments: [String], callgrind: String? = nil, timeout: Duration = .seconds(120)
    ) async throws -> BenchCoordinator {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let process = Process()
        // --exit-with-parent: a killed benchmark does not leave its coordinator running.
        var all = ["serve", "--data-dir", dataDir, "--log-level", "info", "--exit-with-parent"]
        if !arguments.contains("--grpc-port") { all += ["--grpc-port", "0"] }
        if !arguments.contains("--http-port") { all += ["--http-port", "0"] }
        var environment = ProcessInfo.processInfo.environment
        environment["DEMO_MODE"] = nil
        if let callgrind {
            let command = try Callgrind.command(running: executable, all + arguments, directory: callgrind)
            process.executableURL = command.executable
            process.arguments = command.arguments
            environment["LD_PRELOAD"] = ([command.preload] + [environment["LD_PRELOAD"]].compactMap { $0 })
                .joined(separator: ":")
        } else {
            process.executableURL = executable
            process.arguments = all + arguments
        }
        process.environment = environment
        let logPath = dataDir + "/coordinator.log"
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.standardError = log
        let output = Pipe()
        process.standardOutput = output
        let ready: (line: String, at: Int64)
        let startedAt = monotonicNanoseconds()
        do {
            try process.run()
            ready = try await readyLine(from: output.fileHandleForReading, timeout: timeout, process: process)
        } catch {
            guard let callgrind else { throw error }
            Callgrind.removeCopy(in: callgrind)
            throw BenchFailure("\(error) (under callgrind: valgrind's own log is \(callgrind)/valgrind.<pid>.log)")
        }
        // `dtr ready grpc=HOST:PORT http=HOST:PORT ...`
        var fields: [String: String] = [:]
        for part in ready.line.split(separator: " ") {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let grpc = fields["grpc"].flatMap(Self.hostPort), let http = fields["http"] else {
            process.terminate()
            if let callgrind { Callgrind.removeCopy(in: callgrind) }
            throw BenchFailure("the coordinator's ready line is not what dtr serve prints: \(ready.line)")
        }
        return BenchCoordinator(
            grpc: SwarmTarget(host: grpc.host, port: grpc.port), http: "http://\(http)", pid: process.processIdentifier,
            logPath: logPath, process: process, readyAt: ready.at, startedAt: startedAt,
            callgrind: callgrind.map { Callgrind(directory: $0, pid: process.processIdentifier) })
    }

    /// Runs a coordinator inside this process on `dataDir`, with the benchmarks' no-op service next to it.
    static func inProcess(config: CoordinatorConfig) async throws -> BenchCoordinator {
        var logger = Logger(label: "dtr-bench")
        logger.logLevel = .error
        let runtime = try buildCoordinator(
            config: config, logger: logger, extraServices: [BenchService(gate: Gate())])
        let group = ServiceGroup(services: runtime.services, logger: logger)
        let task = Task { try await group.run() }
        let ports = try await runtime.waitUntilListening()
        return BenchCoordinator(
            grpc: SwarmTarget(host: config.host, port: ports.grpc), http: "http://\(config.host):\(ports.http)",
            pid: getpid(), logPath: nil, process: nil, inProcess: task, group: group)
    }

    /// Whether the coordinator runs in a process of its own (its CPU and memory figures are its alone).
    var isSeparateProcess: Bool { pid != nil && pid != getpid() }

    /// CPU time and resident memory of the coordinator's process, when known; under callgrind, also its instructions
    /// (each reading writes a profile, which takes a fraction of a second).
    var stats: ProcessStats? {
        guard var stats = pid.flatMap(ProcessStats.of) else { return nil }
        if let reading = callgrind?.reading() {
            stats.instructions = reading.instructions
            stats.profile = reading.profile
        }
        return stats
    }

    /// Why counting the coordinator's instructions failed, under callgrind.
    var callgrindFailure: String? { callgrind?.failure }

    /// `kill -9`.
    func kill9() {
        guard let process else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Stops the coordinator gracefully (SIGTERM, or the service group's shutdown) and waits for it.
    func stop() async {
        if let process, process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if let callgrind { Callgrind.removeCopy(in: callgrind.directory) }
        if let group, let inProcess {
            await group.triggerGracefulShutdown()
            _ = try? await inProcess.value
        }
    }

    /// Lines of the coordinator's log at level error or above (a child process's text log: `... error ...`).
    func errorLines() -> [String] {
        guard let logPath, let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").filter { line in
            // `<timestamp> <level> <label>: <message> key=value...`; a crash prints `Fatal error: ...`.
            let fields = line.split(separator: " ", maxSplits: 2)
            return (fields.count > 1 && (fields[1] == "error" || fields[1] == "critical"))
                || line.contains("Fatal error")
        }.map(String.init)
    }

    /// How many lines of the coordinator's log contain `text` (nil without a log: a coordinator elsewhere).
    func logLines(containing text: String) -> Int? {
        guard let logPath, let log = try? String(contentsOfFile: logPath, encoding: .utf8) else { return nil }
        return log.split(separator: "\n").count { $0.contains(text) }
    }

    // MARK: Internals

    static func hostPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    private static func readyLine(from handle: FileHandle, timeout: Duration, process: Process) async throws -> (
        line: String, at: Int64
    ) {
        let line = Mutex<(line: String, at: Int64)?>(nil)
        let reader = Thread {
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                buffer.append(chunk)
                if let text = String(data: buffer, encoding: .utf8), let end = text.firstIndex(of: "\n") {
                    let at = monotonicNanoseconds()
                    line.withLock { $0 = (String(text[..<end]), at) }
                    // Keep reading so that the child never blocks on a full pipe.
                    while !handle.availableData.isEmpty {}
                    return
                }
            }
        }
        reader.start()
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let ready = line.withLock({ $0 }) { return ready }
            if !process.isRunning {
                throw BenchFailure(
                    "the coordinator exited with status \(process.terminationStatus) before it was ready")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        process.terminate()
        throw BenchFailure("the coordinator was not ready within \(timeout)")
    }
}

/// Why a benchmark could not run (or found its coordinator misbehaving).
struct BenchFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

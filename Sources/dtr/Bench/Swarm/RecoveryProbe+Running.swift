import Foundation
import Swarm

extension RecoveryProbe {
    /// What a probe wrote: when it started, when health first answered, and each call it sent after that.
    struct Events {
        var started: Int64?
        var health: Int64?
        /// When each call was sent (nanoseconds on `CLOCK_MONOTONIC`).
        var sent: [Int64] = []
        /// Calls answered: sent, answered.
        var answered: [(sent: Int64, answered: Int64)] = []
        /// Calls that failed (refused, given up on at their deadline, or a local error): sent, when, and the status
        /// code (or the error's type).
        var failed: [(sent: Int64, at: Int64, code: String)] = []

        /// Reads the lines of `text`; a last line without its newline (still being written) is left out.
        init(parsing text: String) {
            let complete = text.lastIndex(of: "\n").map { text[..<$0] } ?? ""
            for line in complete.split(separator: "\n") {
                let fields = line.split(separator: " ")
                let times = fields.dropFirst().prefix(2).compactMap { Int64($0) }
                switch (fields.first, fields.count, times.count) {
                case ("started", 2, 1): started = times[0]
                case ("health", 2, 1): health = times[0]
                case ("sent", 2, 1): sent.append(times[0])
                case ("rpc", 3, 2): answered.append((times[0], times[1]))
                case ("failed", 4, 2): failed.append((times[0], times[1], String(fields[3])))
                default: continue
                }
            }
        }

        /// How many calls sent at or before `instant` are not over.
        func unfinished(sentBy instant: Int64) -> Int {
            let over = Set(answered.map(\.sent) + failed.map(\.sent))
            return sent.count { $0 <= instant && !over.contains($0) }
        }

        /// The calls answered that were in flight at some time in one of `windows` (each from its start to its end).
        func answered(inFlightDuring windows: [(start: Int64, end: Int64)]) -> [(sent: Int64, answered: Int64)] {
            answered.filter { call in windows.contains { call.answered >= $0.start && call.sent <= $0.end } }
        }
    }

    /// A running probe process (this binary), started before the coordinator it probes.
    struct Running {
        private let process: Process
        private let out: String
        private let errors: String

        /// The probe's process id.
        var pid: Int32 { process.processIdentifier }

        /// Starts `dtr bench recovery-probe` against `grpc` and `http`, as `worker` (its id and secret), with `--echo`
        /// if `echo`; its events go to `<directory>/<name>.events`, its standard error to `<directory>/<name>.log`.
        /// Returns once it runs (it wrote its `started` line), so that its own start is not part of what it times.
        init(
            grpc: SwarmTarget, http: String, worker: SimulatedWorker, echo: Bool = false, directory: String,
            name: String = "probe"
        ) async throws {
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
                throw BenchFailure(
                    "cannot create \(errors) for the recovery probe's log: is the data directory writable?")
            }
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errors))
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let deadline = ContinuousClock.now + .seconds(30)
            while events.started == nil {
                guard process.isRunning, ContinuousClock.now < deadline else {
                    let said = log
                    if process.isRunning { process.terminate() }
                    throw BenchFailure("the recovery probe did not start within 30 s; it said: \(said)")
                }
                try await Task.sleep(for: .milliseconds(2))
            }
        }

        /// Its events so far.
        var events: Events { Events(parsing: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "") }

        /// What it wrote to its standard error ("nothing" if nothing).
        private var log: String {
            let text = (try? String(contentsOfFile: errors, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
            return text.flatMap { $0.isEmpty ? nil : $0 } ?? "nothing"
        }

        /// Whether the probe still runs.
        var isRunning: Bool { process.isRunning }

        /// Waits until every call sent by `instant` is over (at most 35 s: a call gives up after 30), then stops the
        /// probe and returns its events; throws (with what the probe said) if health never answered, or if the probe
        /// exited by itself meanwhile.
        func finish(waitingForCallsSentBy instant: Int64? = nil) async throws -> Events {
            if let instant {
                let deadline = ContinuousClock.now + .seconds(35)
                // Lines are written in the order of their times: once a call sent after `instant` shows, every call
                // sent by then does.
                while process.isRunning, ContinuousClock.now < deadline {
                    let events = self.events
                    if let last = events.sent.last, last > instant, events.unfinished(sentBy: instant) == 0 { break }
                    try? await Task.sleep(for: .milliseconds(5))
                }
                if !process.isRunning {
                    throw BenchFailure(
                        "the recovery probe exited (status \(process.terminationStatus)) before its calls were over; "
                            + "the probe said: \(log)")
                }
            }
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            let events = self.events
            guard events.health != nil else {
                throw BenchFailure(
                    "the recovery probe saw no answer from the coordinator's /api/health; the probe said: \(log)")
            }
            return events
        }
    }
}

import ArgumentParser
import Foundation

/// `dtr status`: the coordinator in a few lines, as `ray status` gives a cluster: version, uptime, addresses,
/// workers and tasks by status, open sessions.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Summarise the coordinator: version, uptime, workers and tasks by status, sessions.",
        discussion: """
            Reads GET /api/status and GET /api/tasks. With --json, prints {"status": <GET /api/status>, "tasks": \
            <the tasks of GET /api/tasks>}.
            """)

    @OptionGroup var options: APIOptions

    func run() async throws {
        let settings = try options.settings()
        let (status, tasks) = try await APIClient.with(settings) { client in
            async let status = client.get("/api/status")
            async let tasks = client.get("/api/tasks")
            return (try await status.json, try await tasks.json["tasks"])
        }
        if options.json {
            Terminal.write(JSON.object(["status": status, "tasks": tasks]).compactText + "\n")
        } else {
            Terminal.write(
                Self.summary(status: status, tasks: tasks, api: settings.baseURL, style: .forStandardOutput()))
        }
    }

    /// The summary lines: labels in a column, values after them.
    static func summary(status: JSON, tasks: JSON, api: String, style: Style) -> String {
        let workers = status["workers"]
        let workerCounts = workers.object.filter { $0.key != "total" }.compactMapValues(\.int)
        let taskCounts = Dictionary(grouping: tasks.array.compactMap { $0["status"].string }, by: { $0 })
            .mapValues(\.count)
        let heartbeat = status["heartbeat"]
        let milliseconds = { (key: String) in heartbeat[key].double.map { Humanize.duration(seconds: $0 / 1000) } }
        let grpc = status["grpc_port"].int.map { "\(status["host"].string ?? "?"):\($0)" } ?? "-"

        var lines: [(String, String)] = [
            (
                "Coordinator",
                "dtruntime \(status["version"].string ?? "?"), up "
                    + (status["uptime_seconds"].double.map { Humanize.duration(seconds: $0) } ?? "?")
            ),
            ("HTTP API", api),
            ("gRPC", grpc),
        ]
        if let interval = milliseconds("interval_ms") {
            lines.append(
                (
                    "Heartbeats",
                    "every \(interval); suspect after \(milliseconds("suspect_after_ms") ?? "?"), "
                        + "dead after \(milliseconds("dead_after_ms") ?? "?")"
                ))
        }
        let totalWorkers = workers["total"].int ?? workerCounts.values.reduce(0, +)
        lines += [
            (
                "Workers",
                totalWorkers == 0
                    ? "none"
                    : "\(totalWorkers): "
                        + StatusColours.counts(
                            workerCounts, order: ["healthy", "suspect", "dead", "left"], style: style)
            ),
            (
                "Tasks",
                tasks.array.isEmpty
                    ? "none"
                    : "\(tasks.array.count): "
                        + StatusColours.counts(
                            taskCounts, order: ["pending", "running", "stopping", "stopped", "completed", "failed"],
                            style: style)
            ),
            ("Sessions", "\(status["sessions"].int ?? 0) open"),
        ]
        let width = lines.map(\.0.count).max() ?? 0
        return lines.map { label, value in
            label + String(repeating: " ", count: width - label.count + 3) + value + "\n"
        }.joined()
    }
}

import ArgumentParser
import Foundation

/// `dtr tasks create NAME`: declares a training job before (or after) its workers join (`POST /api/tasks`).
struct TasksCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a task: the job workers join by naming it.",
        discussion: """
            POST /api/tasks. The coordinator checks every value and says what is wrong; the name of a task that has \
            not ended is refused (409), unless only workers created the task so far; the name of one that ended \
            starts a new run of it.
            """)

    @OptionGroup var options: APIOptions

    @Argument(help: "The task's name: 1-64 of A-Z a-z 0-9 . _ -, the id workers register with.")
    var name: String

    @Option(help: "Members the job is meant to have, at most: the coordinator admits no more (0-65536).")
    var worldSize: Int?

    @Option(help: "The fewest members the job starts and keeps training with (default: --world-size).")
    var minWorldSize: Int?

    @Option(help: "The dataset the job trains on.")
    var dataset: String?

    @Option(help: "Epochs the job means to run (1-1000000).")
    var epochs: Int?

    @Option(help: #"The job's settings: a JSON object, kept as sent, e.g. '{"lr": 0.1}'."#)
    var config: String?

    mutating func validate() throws {
        _ = try configObject()
    }

    func run() async throws {
        var body: [String: JSON] = ["name": .string(name)]
        if let worldSize { body["world_size"] = .int(Int64(worldSize)) }
        if let minWorldSize { body["min_world_size"] = .int(Int64(minWorldSize)) }
        if let dataset { body["dataset"] = .string(dataset) }
        if let epochs { body["epochs"] = .int(Int64(epochs)) }
        if let config = try configObject() { body["config"] = config }
        let response = try await APIClient.with(try options.settings()) { client in
            try await client.post("/api/tasks", body: .object(body))
        }
        if options.json { return Terminal.write(response.text) }
        let task = response.json
        Terminal.write(
            "task \(task["task_id"].string ?? name) created (\(task["status"].string ?? "?")): workers join it with "
                + "Worker(..., task_id=\"\(task["task_id"].string ?? name)\") or dtrun --task "
                + "\(task["task_id"].string ?? name)\n")
    }

    /// `--config` parsed; nil when not given.
    private func configObject() throws -> JSON? {
        guard let config else { return nil }
        guard let json = try? JSON(data: Data(config.utf8)), case .object = json else {
            throw ValidationError(#"--config must be a JSON object, such as '{"lr": 0.1}' (got \#(config))"#)
        }
        return json
    }
}

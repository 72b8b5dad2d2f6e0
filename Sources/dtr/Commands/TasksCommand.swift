import ArgumentParser
import Foundation

/// `dtr tasks`: training jobs. Lists them by default; `stop` and `create` act on one.
struct TasksCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "List, create and stop tasks (training jobs).",
        subcommands: [TasksListCommand.self, TasksStopCommand.self, TasksCreateCommand.self],
        defaultSubcommand: TasksListCommand.self)
}

/// `dtr tasks [list]`: every task, oldest first.
struct TasksListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List tasks: status, workers, dataset, epochs, age, how long they ran, why they ended.",
        discussion: """
            Reads GET /api/tasks. WORKERS is the current members over the world size the task was created with (just \
            the members when it was not given).
            """,
        aliases: ["ls"])

    @OptionGroup var options: APIOptions

    func run() async throws {
        let response = try await APIClient.with(try options.settings()) { client in try await client.get("/api/tasks") }
        if options.json { return Terminal.write(response.text) }
        let tasks = response.json["tasks"].array
        guard !tasks.isEmpty else {
            return Terminal.writeError("No tasks. Create one with `dtr tasks create NAME`, or start a worker.\n")
        }
        Terminal.write(Self.table(tasks, now: Date()).render(style: .forStandardOutput()))
    }

    /// The table of `tasks` (elements of `GET /api/tasks`' `tasks`) at time `now`.
    static func table(_ tasks: [JSON], now: Date) -> Table {
        var table = Table([
            .init("TASK"), .init("STATUS"), .init("WORKERS", .right), .init("DATASET"), .init("EPOCHS", .right),
            .init("AGE", .right), .init("RAN", .right), .init("REASON"),
        ])
        for task in tasks {
            let status = task["status"].string ?? "?"
            let members = task["workers"].int.map(String.init) ?? "?"
            let worldSize = task["world_size"].int ?? 0
            // How long it ran: from the first join to its end, or to now while it runs.
            let ran = task["started_at"].date.map { started in
                Humanize.duration(
                    seconds: (task["ended_at"].date ?? now).timeIntervalSince(started), wholeSeconds: true)
            }
            table.append([
                Table.Cell(task["task_id"].string ?? task["name"].string ?? "?"),
                Table.Cell(status, colour: StatusColours.colour(of: status)),
                Table.Cell(worldSize > 0 ? "\(members)/\(worldSize)" : members),
                Table.Cell(task["dataset"].string ?? "-"),
                Table.Cell(task["epochs"].int.map(String.init) ?? "-"),
                Table.Cell(
                    task["created_at"].date.map {
                        Humanize.duration(seconds: now.timeIntervalSince($0), wholeSeconds: true)
                    } ?? "-"),
                Table.Cell(ran ?? "-"),
                Table.Cell(task["reason"].string ?? ""),
            ])
        }
        return table
    }
}

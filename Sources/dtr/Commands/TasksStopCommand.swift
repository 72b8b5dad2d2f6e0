import ArgumentParser

/// `dtr tasks stop ID`: asks every worker of a task to stop (`POST /api/tasks/:id/stop`).
struct TasksStopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop a task: its workers are told to stop and leave.",
        discussion: """
            POST /api/tasks/ID/stop. Every worker of the task gets STOP at once on its session stream (and in every \
            heartbeat reply); the SDK ends epoch_batches after the batch in hand. The task is stopping until its last \
            worker leaves, then stopped; a task without workers is stopped at once. Stopping twice is harmless; a \
            completed or failed task cannot be stopped.
            """)

    @OptionGroup var options: APIOptions

    @Argument(help: "The task's id (its name).")
    var id: String

    func run() async throws {
        let response = try await APIClient.with(try options.settings()) { client in
            try await client.post("/api/tasks/\(APIClient.pathSegment(id))/stop", body: .object([:]))
        }
        if options.json { return Terminal.write(response.text) }
        Terminal.write(Self.summary(response.json))
    }

    /// What happened, in a sentence.
    static func summary(_ task: JSON) -> String {
        let name = task["task_id"].string ?? "?"
        let status = task["status"].string ?? "?"
        let workers = task["workers"].int ?? 0
        if status == "stopping" {
            let members = workers == 1 ? "its 1 worker was" : "its \(workers) workers were"
            return "task \(name) is stopping: \(members) told to stop; it is stopped once they have left\n"
        }
        return "task \(name) is \(status)\n"
    }
}

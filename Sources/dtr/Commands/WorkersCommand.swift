import ArgumentParser

/// `dtr workers`: every worker the coordinator knows, one row each, as `kubectl get pods` lists pods.
struct WorkersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workers",
        abstract: "List workers: rank, task, status, last heartbeat, step, metrics, address.",
        discussion: """
            Reads GET /api/workers: members, and dead or departed workers for 10 minutes after they left, sorted by \
            task, then rank. METRICS shows the first 4 of what the worker last reported, by name.
            """)

    @OptionGroup var options: APIOptions

    @Option(help: "Only the workers of this task.")
    var task: String?

    func run() async throws {
        let settings = try options.settings()
        let response = try await APIClient.with(settings) { client in
            try await client.get("/api/workers", query: task.map { [("task", $0)] } ?? [])
        }
        if options.json { return Terminal.write(response.text) }
        let workers = response.json["workers"].array
        guard !workers.isEmpty else {
            return Terminal.writeError(task.map { "No workers in task \($0).\n" } ?? "No workers.\n")
        }
        Terminal.write(Self.table(workers).render(style: .forStandardOutput()))
    }

    /// The table of `workers` (elements of `GET /api/workers`' `workers`).
    static func table(_ workers: [JSON]) -> Table {
        var table = Table([
            .init("RANK", .right), .init("WORKER"), .init("TASK"), .init("STATUS"), .init("HEARTBEAT", .right),
            .init("STEP", .right), .init("METRICS"), .init("HOST"),
        ])
        for worker in workers {
            let status = worker["status"].string ?? "?"
            let address = worker["host"].string.map { host in worker["port"].int.map { "\(host):\($0)" } ?? host }
            table.append([
                Table.Cell(worker["rank"].int.map(String.init) ?? "-"),
                Table.Cell(worker["worker_id"].string ?? "?"),
                Table.Cell(worker["task_id"].string ?? "-"),
                Table.Cell(status, colour: StatusColours.colour(of: status)),
                Table.Cell(worker["last_heartbeat_age_seconds"].double.map(Humanize.age) ?? "-"),
                Table.Cell(worker["step"].int.map(String.init) ?? "-"),
                Table.Cell(Humanize.metrics(worker["metrics"].object)),
                Table.Cell(address ?? "-"),
            ])
        }
        return table
    }
}

import ArgumentParser
import Foundation

/// `dtr checkpoints`: every checkpoint attempt, newest first, with its size, commit time and throughput.
struct CheckpointsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoints",
        abstract: "List checkpoints: step, status, parts, size, commit time, write throughput, metrics.",
        discussion: """
            Reads GET /api/checkpoints. PARTS is the parts reported over the world size; COMMIT how long the save \
            took from its opening to the commit; WRITE the parts' total over the slowest rank's write time. With \
            --task, --json prints the document with only that task's checkpoints.
            """)

    @OptionGroup var options: APIOptions

    @Option(help: "Only the checkpoints of this task.")
    var task: String?

    func run() async throws {
        let response = try await APIClient.with(try options.settings()) { client in
            try await client.get("/api/checkpoints")
        }
        let checkpoints = response.json["checkpoints"].array.filter { task == nil || $0["task_id"].string == task }
        if options.json {
            guard task != nil, case .object(var document) = response.json else { return Terminal.write(response.text) }
            document["checkpoints"] = .array(checkpoints)
            return Terminal.write(JSON.object(document).compactText + "\n")
        }
        guard !checkpoints.isEmpty else {
            return Terminal.writeError(task.map { "No checkpoints of task \($0).\n" } ?? "No checkpoints.\n")
        }
        Terminal.write(Self.table(checkpoints, now: Date()).render(style: .forStandardOutput()))
    }

    /// The table of `checkpoints` (elements of `GET /api/checkpoints`' `checkpoints`) at time `now`.
    static func table(_ checkpoints: [JSON], now: Date) -> Table {
        var table = Table([
            .init("CHECKPOINT"), .init("TASK"), .init("STEP", .right), .init("EPOCH", .right), .init("STATUS"),
            .init("PARTS", .right), .init("SIZE", .right), .init("COMMIT", .right), .init("WRITE", .right),
            .init("AGE", .right), .init("METRICS"),
        ])
        for checkpoint in checkpoints {
            let status = checkpoint["status"].string ?? "?"
            let parts = checkpoint["parts"].int.map(String.init) ?? "?"
            let worldSize = checkpoint["world_size"].int.map(String.init) ?? "?"
            // An aborted checkpoint's metrics matter less than why it was aborted.
            let detail =
                checkpoint["abort_reason"].string.map { "aborted: \($0)" }
                ?? Humanize.metrics(checkpoint["metrics"].object)
            table.append([
                Table.Cell(checkpoint["checkpoint_id"].string ?? "?"),
                Table.Cell(checkpoint["task_id"].string ?? "-"),
                Table.Cell(checkpoint["step"].int.map(String.init) ?? "-"),
                Table.Cell(checkpoint["epoch"].int.map(String.init) ?? "-"),
                Table.Cell(status, colour: StatusColours.colour(of: status)),
                Table.Cell("\(parts)/\(worldSize)"),
                Table.Cell(checkpoint["total_bytes"].double.map(Humanize.bytes) ?? "-"),
                Table.Cell(checkpoint["commit_latency_seconds"].double.map { Humanize.duration(seconds: $0) } ?? "-"),
                Table.Cell(
                    checkpoint["write_bytes_per_second"].double.map { Humanize.rate(bytesPerSecond: $0) } ?? "-"),
                Table.Cell(
                    checkpoint["created_at"].date.map {
                        Humanize.duration(seconds: now.timeIntervalSince($0), wholeSeconds: true)
                    } ?? "-"),
                Table.Cell(detail),
            ])
        }
        return table
    }
}

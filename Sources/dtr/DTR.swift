import ArgumentParser
import Coordinator

/// The `dtr` command: the dtruntime coordinator and its tools.
@main
struct DTR: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dtr",
        abstract: "dtruntime: the coordinator of distributed training jobs.",
        discussion: """
            `dtr serve` runs the coordinator. status, workers, tasks, logs and checkpoints are clients of its HTTP \
            API (--api or DTR_API, default http://127.0.0.1:51051; the admin token from DTR_ADMIN_TOKEN): tables \
            for people, --json for scripts. See docs/CLI.md.
            """,
        version: DTRuntimeVersion.current,
        subcommands: [
            Serve.self, StatusCommand.self, WorkersCommand.self, TasksCommand.self, LogsCommand.self,
            CheckpointsCommand.self, Bench.self,
        ])
}

import ArgumentParser
import Coordinator

/// The `dtr` command: the dtruntime coordinator and its tools.
@main
struct DTR: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dtr",
        abstract: "dtruntime: the coordinator of distributed training jobs.",
        version: DTRuntimeVersion.current,
        subcommands: [Serve.self, Bench.self])
}

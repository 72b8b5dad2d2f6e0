import ArgumentParser
import Coordinator
import Foundation
import Logging
import RuntimeCore
import ServiceLifecycle

/// `dtr serve`: runs the coordinator until SIGINT or SIGTERM.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the coordinator: gRPC for workers, HTTP/JSON for people and the dashboard.",
        discussion: """
            Every option falls back to an environment variable, then to its default. Once both servers listen, one \
            line on standard output gives the bound addresses:
              dtr ready grpc=127.0.0.1:50051 http=127.0.0.1:51051 data_dir=./dtr-data checkpoints=file:///.../checkpoints
            SIGINT or SIGTERM shut down gracefully: open worker sessions are closed, in-flight calls drain, pending \
            state is written.
            """)

    @OptionGroup var options: ServeOptions

    // `dtr bench swarm` measures its baselines (no-op messages on the same server) on the coordinator it starts, or on
    // one elsewhere (--target) started with this flag.
    @Flag(
        help: ArgumentHelp(
            "Also serve the benchmarks' no-op service, the baselines of `dtr bench swarm --target` (not for "
                + "production: one of its methods parks calls until another releases them)."))
    var benchNoopService = false

    // Hidden: a child coordinator of `dtr bench swarm` ends when the benchmark does, however it ends.
    @Flag(help: ArgumentHelp("Shut down when the parent process exits (dtr bench swarm).", visibility: .hidden))
    var exitWithParent = false

    /// Checks flags and environment variables while parsing, so that a bad value is reported with `dtr serve`'s usage
    /// (an error thrown from `run()` would get the root command's `Usage: dtr <subcommand>`).
    func validate() throws {
        _ = try options.resolve(environment: ProcessInfo.processInfo.environment)
        _ = try options.demoMode(environment: ProcessInfo.processInfo.environment)
    }

    func run() async throws {
        // Read first: loading the state may take seconds, and a parent that dies meanwhile must still be noticed.
        let parent = getppid()
        let environment = ProcessInfo.processInfo.environment
        let config = try options.resolve(environment: environment)
        let demo = try options.demoMode(environment: environment)
        let logs = LogBuffer()
        LoggingSystem.bootstrap { label in
            CoordinatorLogHandler(
                label: label, level: config.logLevel, format: config.logFormat, buffer: logs,
                sink: CoordinatorLogHandler.standardError)
        }
        let logger = Logger(label: "dtr")
        logger.info("starting: restoring the state", metadata: ["data_dir": "\(config.dataDir)"])

        let runtime: CoordinatorRuntime
        do {
            runtime = try buildCoordinator(
                config: config, logger: logger, logs: logs,
                extraServices: benchNoopService ? [BenchService(gate: Gate())] : [])
        } catch let error as any CodedError {
            throw StartupError(message: error.message)
        }

        // The demo swarm comes last, so that it stops first: its workers leave before the servers drain.
        let demoServices: [any Service] =
            demo
            ? [
                DemoService(
                    runtime: runtime, host: config.host, token: options.workerTokenText(environment: environment),
                    deadAfter: config.membership.deadAfter, logger: Logger(label: "dtr.demo"))
            ] : []
        var groupConfig = ServiceGroupConfiguration(
            services: runtime.services + demoServices, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        // A safety net: a graceful shutdown normally takes milliseconds (sessions are closed, calls are short).
        groupConfig.maximumGracefulShutdownDuration = .seconds(30)
        let group = ServiceGroup(configuration: groupConfig)
        do {
            try await withThrowingTaskGroup(of: Bool.self) { tasks in
                tasks.addTask {
                    try await group.run()
                    return true
                }
                tasks.addTask {
                    let ports = try await runtime.waitUntilListening()
                    let line =
                        "dtr ready grpc=\(config.host):\(ports.grpc) http=\(config.host):\(ports.http) "
                        + "data_dir=\(config.dataDir) checkpoints=\(runtime.engine.checkpointLocation?.uri ?? "none")\n"
                    FileHandle.standardOutput.write(Data(line.utf8))
                    let scheme = config.tls == nil ? "http" : "https"
                    logger.info(
                        "coordinator listening: workers connect to grpc, people open http",
                        metadata: [
                            "grpc": "\(config.host):\(ports.grpc)",
                            "http": "\(scheme)://\(config.host):\(ports.http)/api/workers",
                        ])
                    return false
                }
                if exitWithParent {
                    tasks.addTask {
                        await ParentWatch.waitUntilGone(parent: parent)
                        if !Task.isCancelled {
                            logger.warning("the parent process exited: shutting down (--exit-with-parent)")
                            await group.triggerGracefulShutdown()
                        }
                        return false
                    }
                }
                // Ends when the service group ends; the readiness and parent-watch tasks are cancelled if still waiting.
                while let groupEnded = try await tasks.next(), !groupEnded {}
                tasks.cancelAll()
            }
        } catch {
            if let explanation = describeStartupFailure(error, config: config) {
                throw StartupError(message: explanation)
            }
            throw error
        }
    }
}

/// Why the coordinator could not start; ArgumentParser prints it as `Error: <message>` and exits with status 1.
struct StartupError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

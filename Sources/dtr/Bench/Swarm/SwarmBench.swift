import ArgumentParser
import Coordinator
import Foundation
import GRPCCore
import RuntimeCore
import RuntimeProto
import Swarm

/// `dtr bench swarm <scenario>`: a swarm of simulated workers against a coordinator, through the real gRPC API.
struct SwarmBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarm",
        abstract:
            "A swarm of simulated workers against a coordinator: heartbeats, rendezvous, departure, memory, recovery.",
        discussion: """
            Scenarios (each prints a Markdown table, then one JSON line):
              heartbeat          N workers heartbeat at 1 Hz on session streams: round trips, false deaths, the \
            coordinator's CPU and memory; then the highest sustained heartbeat rate; both against the same workers' \
            heartbeats answered by a no-op session method, and against raw no-op stream messages.
              rendezvous         N workers register into one task: first registration to every worker holding its \
            rank at the final membership epoch.
              departure          the end of a job: N workers heartbeating at 1 Hz each close their session and \
            deregister while the others go on: how long, against as many no-op calls; nobody suspected. With \
            --dataset-shards, mid-epoch: each leave also moves shards.
              memory             the coordinator's resident memory per registered worker.
              recovery           kill -9 and restart with N workers, a ledger of committed shards and checkpoints: \
            time until it serves again, and no false deaths afterwards.
              failure-detection  under heartbeat load, workers stop heartbeating: last heartbeat to DEAD and to the \
            survivors' push.
              big-dataset        N workers heartbeat while another task creates an epoch ledger of 2^--log2-shards \
            shards, and a worker joins and leaves it: the others' heartbeat round trips, idle against during.
            The coordinator is a `dtr serve` child process of this binary (default), this process (--in-process: CPU \
            and memory then include the swarm), or one elsewhere (--target). The barrier-processes scenario needs \
            Python processes: bench/barrier_processes.py.
            """)

    enum Scenario: String, ExpressibleByArgument, CaseIterable {
        case heartbeat, rendezvous, departure, memory, recovery
        case failureDetection = "failure-detection"
        case bigDataset = "big-dataset"
    }

    @Argument(help: "heartbeat, rendezvous, departure, memory, recovery, failure-detection or big-dataset.")
    var scenario: Scenario
    @Option(
        help: ArgumentHelp(
            "Simulated workers (default: 10000; rendezvous 4000; memory 100000; big-dataset 1000; 200 with "
                + "--callgrind)."))
    var workers: Int?
    @Option(help: "HTTP/2 connections the workers share.") var connections = 4
    @Option(help: "heartbeat: how long the 1 Hz load is measured; big-dataset: the idle window. E.g. 30s.")
    var duration = "30s"
    @Option(help: "heartbeat: how long each maximum-rate measurement runs, e.g. 10s.") var rateDuration = "10s"
    @Option(help: "failure-detection: workers per task.") var taskSize = 100
    @Option(help: "failure-detection: how many workers stop heartbeating.") var deaths = 20
    @Option(help: "recovery: committed ledger entries (shards of one dataset epoch, all done).")
    var ledgerEntries = 1_000_000
    @Option(help: "recovery: committed checkpoints in the store.") var checkpoints = 1000
    @Option(help: "big-dataset: the dataset's shards, as a power of two (at most 24).") var log2Shards = 24
    @Option(
        help: ArgumentHelp(
            "departure: the task reads a dataset of this many shards, its epoch unfinished when the job ends; "
                + "rendezvous: its epoch begun by the first worker before the others join (0: none)."))
    var datasetShards = 0
    @Option(
        help: ArgumentHelp(
            "A coordinator elsewhere: its gRPC HOST:PORT (every scenario but memory and recovery); the floors need it "
                + "started with `dtr serve --bench-noop-service`."))
    var target: String?
    @Option(
        help:
            "With --target: its HTTP base URL, e.g. http://10.0.0.5:51051 (failure-detection needs it; departure reads /api/workers with it)."
    )
    var targetHttp: String?
    @Option(help: "With --target on this machine: its process id, for CPU and memory figures.") var targetPid: Int32?
    @Option(help: "With --target: the worker token it requires [env: DTR_WORKER_TOKEN].") var workerToken: String?
    @Flag(help: "Run the coordinator inside this process (CPU and memory figures then include the swarm).")
    var inProcess = false
    @Option(
        help: ArgumentHelp(
            "heartbeat: run the coordinator under valgrind's callgrind and count its instructions per message; its "
                + "profiles go to this directory (a few hundred workers: callgrind is 30-50× slower).",
            valueName: "directory"))
    var callgrind: String?

    func validate() throws {
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1 (got \(workers))") }
        guard (1...64).contains(connections) else {
            throw ValidationError("--connections must be between 1 and 64 (got \(connections))")
        }
        guard DurationArgument.parse(duration) != nil, DurationArgument.parse(rateDuration) != nil else {
            throw ValidationError("--duration and --rate-duration must be durations such as 10s or 500ms")
        }
        if target != nil, inProcess { throw ValidationError("--target and --in-process exclude each other") }
        if target != nil || inProcess, scenario == .memory || scenario == .recovery {
            throw ValidationError(
                "the \(scenario.rawValue) scenario starts (and, for recovery, kills) its own coordinator process: "
                    + "run it without --target and --in-process")
        }
        if callgrind != nil, scenario != .heartbeat || target != nil || inProcess {
            throw ValidationError(
                "--callgrind counts instructions per message in the heartbeat scenario, with the coordinator a child "
                    + "process: run `dtr bench swarm heartbeat --callgrind DIR` without --target and --in-process")
        }
        if let callgrind, let profiles = callgrindDirectory,
            callgrind.isEmpty || profiles.contains(where: { " :%".contains($0) })
        {
            throw ValidationError(
                "--callgrind needs a directory whose full path has no spaces, ':' or '%' (valgrind's options and "
                    + "LD_PRELOAD split on them; got \"\(profiles)\")")
        }
        if let target, BenchCoordinator.hostPort(target) == nil {
            throw ValidationError("--target must be HOST:PORT, e.g. 127.0.0.1:50051 (got \"\(target)\")")
        }
        if scenario == .failureDetection, target != nil, targetHttp == nil {
            throw ValidationError("failure-detection watches /api/events: give --target-http with --target")
        }
        guard (4...24).contains(log2Shards) else {
            throw ValidationError("--log2-shards must be between 4 and 24 (got \(log2Shards))")
        }
        guard (0...(1 << 24)).contains(datasetShards) else {
            throw ValidationError("--dataset-shards must be between 0 and 16777216 (got \(datasetShards))")
        }
        if datasetShards > 0, scenario != .departure, scenario != .rendezvous {
            throw ValidationError(
                "--dataset-shards is for the departure and rendezvous scenarios (big-dataset takes --log2-shards)")
        }
        guard taskSize >= 2, deaths >= 1 else { throw ValidationError("--task-size must be >= 2 and --deaths >= 1") }
    }

    func run() async throws {
        let loadBefore = ProcessStats.loadAverage
        let report: SwarmReport
        switch scenario {
        case .heartbeat: report = try await heartbeat()
        case .rendezvous: report = try await rendezvous()
        case .departure: report = try await departure()
        case .memory: report = try await memory()
        case .recovery: report = try await recovery()
        case .failureDetection: report = try await failureDetection()
        case .bigDataset: report = try await bigDataset()
        }
        print(report.render(loadBefore: loadBefore, loadAfter: ProcessStats.loadAverage, coordinator: coordinatorKind))
        if !report.correct { throw ExitCode(2) }
    }

    // MARK: Shared

    /// The command line, as the report quotes it.
    var commandLine: String {
        "dtr bench swarm " + CommandLine.arguments.dropFirst(3).joined(separator: " ")
    }

    var coordinatorKind: String {
        if target != nil { return "elsewhere (--target)" }
        return inProcess ? "in this process" : "a dtr serve child process"
    }

    /// `--callgrind`'s directory, absolute: the profiles' paths in the report, and LD_PRELOAD, must not depend on the
    /// directory the benchmark ran in.
    var callgrindDirectory: String? { callgrind.map { URL(fileURLWithPath: $0).standardizedFileURL.path } }

    var durationValue: Duration { DurationArgument.parse(duration) ?? .seconds(30) }
    var rateDurationValue: Duration { DurationArgument.parse(rateDuration) ?? .seconds(10) }

    /// A temporary data directory, removed by `body`'s end.
    func withDataDirectory<Result>(_ body: (String) async throws -> Result) async throws -> Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("dtr-swarm-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try await body(directory)
    }

    /// The coordinator of a scenario that can run anywhere: `arguments` configure a child process (the in-process one
    /// gets the same settings through `config`).
    func coordinator(dataDir: String, arguments: [String], config: CoordinatorConfig) async throws -> BenchCoordinator {
        if let target, let address = BenchCoordinator.hostPort(target) {
            let token = workerToken ?? ProcessInfo.processInfo.environment["DTR_WORKER_TOKEN"]
            return .remote(
                SwarmTarget(host: address.host, port: address.port, token: token), http: targetHttp, pid: targetPid)
        }
        if inProcess { return try await .inProcess(config: config) }
        return try await .spawn(
            dataDir: dataDir, arguments: arguments + ["--bench-noop-service"], callgrind: callgrindDirectory)
    }

    /// The coordinator ``coordinator(dataDir:arguments:config:)`` picks, without its per-client gRPC rate limit
    /// (`--grpc-rate-limit 0`): for a scenario whose swarm, one client standing for N hosts, calls more at once than
    /// one address may, where a real cluster calls from N addresses, each with a budget of its own. The report's note
    /// (``noRateLimitNote(_:)``) says so.
    func coordinatorWithoutRateLimit(dataDir: String) async throws -> BenchCoordinator {
        try await coordinator(
            dataDir: dataDir, arguments: ["--grpc-rate-limit", "0"],
            config: CoordinatorConfig(grpcPort: 0, httpPort: 0, dataDir: dataDir, grpcRateLimit: 0))
    }

    /// The note for a report measured on ``coordinatorWithoutRateLimit(dataDir:)`` (none against `--target`).
    func noRateLimitNote(_ count: Int) -> [String] {
        target != nil
            ? []
            : [
                "The coordinator ran without its per-client gRPC rate limit (--grpc-rate-limit 0): the swarm is one "
                    + "client standing for \(count) hosts."
            ]
    }

    /// Runs `measure` in a temporary data directory against the coordinator `start` gives (by default the one
    /// ``coordinator(dataDir:arguments:config:)`` picks, on its defaults), with the swarm's connections open; the
    /// coordinator is stopped however `measure` ends.
    func withCoordinator(
        start: ((String) async throws -> BenchCoordinator)? = nil,
        _ measure: (SwarmConnections, BenchCoordinator, String) async throws -> SwarmReport
    ) async throws -> SwarmReport {
        try await withDataDirectory { directory in
            let coordinator: BenchCoordinator
            if let start {
                coordinator = try await start(directory)
            } else {
                coordinator = try await self.coordinator(
                    dataDir: directory, arguments: [],
                    config: CoordinatorConfig(grpcPort: 0, httpPort: 0, dataDir: directory))
            }
            do {
                let report = try await withConnections(coordinator.grpc) { connections in
                    try await measure(connections, coordinator, directory)
                }
                await coordinator.stop()
                return report
            } catch {
                await coordinator.stop()
                throw error
            }
        }
    }

    /// Runs `body` with the swarm's connections open.
    func withConnections<Result: Sendable>(
        _ target: SwarmTarget, count: Int? = nil, _ body: (SwarmConnections) async throws -> Result
    ) async throws -> Result {
        let connections = try SwarmConnections(target: target, connections: count ?? self.connections)
        let running = Task { try await connections.run() }
        do {
            let result = try await body(connections)
            connections.shutdown()
            _ = try? await running.value
            return result
        } catch {
            connections.shutdown()
            _ = try? await running.value
            throw error
        }
    }

    /// Whether the coordinator serves the benchmarks' no-op service, on which the floors run: one the benchmark starts
    /// always does (`dtr serve --bench-noop-service`); one elsewhere (--target) is asked with a no-op call. Any other
    /// failure of that call (unreachable, refused) ends the run: the scenario could not run against it either.
    func servesNoopService(_ connections: SwarmConnections) async throws -> Bool {
        guard target != nil else { return true }
        do {
            _ = try await connections.client(0).unary(
                request: ClientRequest(message: [UInt8](), metadata: connections.metadata),
                descriptor: BenchService.echo, serializer: RawBytes(), deserializer: RawBytes(), options: .defaults
            ) { try $0.message }
            return true
        } catch let error as RPCError where error.code == .unimplemented {
            return false
        }
    }

    /// The floor of `count` workers each making a call: the same number of no-op calls, each followed by a no-op
    /// stream (``EchoStreams/burst(_:count:message:unary:)``), all at once; measured twice (the first warms the
    /// connections up), the faster counts. Nil, with a note, against a coordinator elsewhere (--target) that does
    /// not serve the no-op service (started without `--bench-noop-service`).
    func callFloor(_ connections: SwarmConnections, count: Int, message: [UInt8], report: inout SwarmReport)
        async throws -> Duration?
    {
        do {
            let first = try await EchoStreams.burst(connections, count: count, message: message)
            let second = try await EchoStreams.burst(connections, count: count, message: message)
            return min(first.lastAnswer, second.lastAnswer)
        } catch let error as RPCError where error.code == .unimplemented {
            report.notes.append(
                "No floor: the coordinator at --target does not serve the benchmarks' no-op service (start it with "
                    + "`dtr serve --bench-noop-service` for it).")
            return nil
        }
    }

    /// Registers `dataset` (`shards` shards of one sample) and begins its epoch 0 for `worker`'s task: `worker`'s
    /// first page creates the ledger over the task's members. Returns how long the first page took.
    func beginEpoch(of dataset: String, shards: Int, by worker: SimulatedWorker, _ connections: SwarmConnections)
        async throws -> Duration
    {
        let spec = Dtruntime_V1_DatasetSpec.with {
            $0.name = dataset
            $0.totalSamples = Int64(shards)
            $0.shardSize = 1
            $0.shuffle = true
            $0.seed = 7
        }
        _ = try await connections.stub(worker.connection).registerDataset(
            .with { $0.spec = spec }, metadata: connections.metadata)
        let clock = ContinuousClock()
        let start = clock.now
        _ = try await firstAssignment(of: worker, dataset: dataset, connections)
        return clock.now - start
    }

    /// `worker`'s first page of shards of `dataset` (epoch 0, up to 1,024 of them; its first call creates the
    /// epoch's ledger), asked again while the coordinator says the ledger is still being built (UNAVAILABLE, retry), as
    /// a reader would; for at most a minute.
    func firstAssignment(of worker: SimulatedWorker, dataset: String, _ connections: SwarmConnections) async throws
        -> Dtruntime_V1_GetShardAssignmentResponse
    {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            do {
                return try await firstPage(of: worker, dataset: dataset, shards: 1024, connections)
            } catch let error as RPCError where error.code == .unavailable && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// One `GetShardAssignment` of `worker`: the first page, of at most `shards` shards, of `dataset`'s epoch 0.
    func firstPage(of worker: SimulatedWorker, dataset: String, shards: UInt32, _ connections: SwarmConnections)
        async throws -> Dtruntime_V1_GetShardAssignmentResponse
    {
        try await connections.stub(worker.connection).getShardAssignment(
            .with {
                $0.dataset = dataset
                $0.workerID = worker.id
                $0.epoch = 0
                $0.maxShards = shards
            }, metadata: worker.metadata(connections))
    }

    /// Waits until `condition` holds, checking every `interval`; false after `timeout`.
    func waitUntil(timeout: Duration, every interval: Duration = .milliseconds(20), _ condition: () -> Bool) async
        -> Bool
    {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: interval)
        }
        return condition()
    }

    /// Why `members`, all the live members of their tasks, do not hold their tasks' ranks; nil when they do. In each
    /// task the members' views hold exactly the ranks 0..<n and name the task; `settled` (members with sessions, their
    /// views pushed) also asks for one membership epoch and the world size n. Without sessions a view is the last
    /// reply's, of the task as it was then.
    func rankingProblem(_ members: [SimulatedWorker], settled: Bool = true) -> String? {
        let tasks = Dictionary(grouping: members.map { ($0.task, $0.view) }, by: \.0).mapValues { $0.map(\.1) }
        let unranked = tasks.filter { task, views in
            if Set(views.map(\.rank)) != Set(0..<Int32(views.count)) || views.contains(where: { $0.taskID != task }) {
                return true
            }
            return settled
                && (Set(views.map(\.membershipEpoch)).count != 1
                    || views.contains { $0.worldSize != Int32(views.count) })
        }
        guard let (task, views) = unranked.min(by: { $0.key < $1.key }) else { return nil }
        let distinct = { (values: [String]) in Set(values).sorted().prefix(5).joined(separator: ", ") }
        return "in \(unranked.count) of \(tasks.count) tasks the workers do not hold the ranks 0..<n"
            + (settled ? " at one membership epoch" : "") + "; first \(task), of \(views.count) workers: "
            + "\(Set(views.map(\.rank)).count) distinct ranks, epochs \(distinct(views.map { "\($0.membershipEpoch)" })), "
            + "world sizes \(distinct(views.map { "\($0.worldSize)" })), tasks \(distinct(views.map(\.taskID)))"
    }

    /// Checks what every scenario checks: no errors, no false deaths (workers told to rejoin or suspected), and no
    /// error in the coordinator's log; with `connections` (a coordinator that did not restart), that none of them was
    /// lost and made again.
    func checkCorrectness(
        _ report: inout SwarmReport, recorder: SwarmRecorder, live: [SimulatedWorker], coordinator: BenchCoordinator,
        connections: SwarmConnections? = nil
    ) {
        if let connections {
            report.figures["connections_made"] = connections.made
            if connections.made > connections.count {
                report.problem(
                    "the swarm made \(connections.made) connections for its \(connections.count): connections were lost "
                        + "(and the calls on them failed UNAVAILABLE) although the coordinator did not restart")
            }
        }
        let falseDeaths = live.filter(\.sawRejoin).count
        let suspected = live.filter(\.sawSuspect).count
        report.figures["errors"] = recorder.errorCount
        report.figures["error_kinds"] = recorder.errors
        report.figures["false_deaths"] = falseDeaths
        report.figures["false_suspicions"] = suspected
        report.figures["rate_limited_retries"] = recorder.counted("rate_limited")
        report.figures["unavailable_retries"] = recorder.counted("unavailable_retries")
        report.figures["id_in_use_waits"] = recorder.counted("id_in_use_waits")
        if recorder.errorCount > 0 {
            report.problem("\(recorder.errorCount) calls failed (\(recorder.firstErrors.joined(separator: "; ")))")
        }
        if falseDeaths > 0 { report.problem("\(falseDeaths) live workers were told to rejoin (false deaths)") }
        if suspected > 0 { report.problem("\(suspected) live workers were suspected") }
        let errors = coordinator.errorLines()
        report.figures["coordinator_log_errors"] = errors.count
        if !errors.isEmpty {
            report.problem("the coordinator logged errors: \(errors.prefix(3).joined(separator: " / "))")
        }
    }

    /// Workers named `prefix-0`... in `task`, spread over the connections.
    func makeWorkers(
        _ count: Int, prefix: String, task: (Int) -> String, maxWorldSize: Int32 = 0, recorder: SwarmRecorder
    )
        -> [SimulatedWorker]
    {
        (0..<count).map { index in
            SimulatedWorker(
                id: "\(prefix)-\(index)", task: task(index), connection: index, maxWorldSize: maxWorldSize,
                recorder: recorder)
        }
    }
}

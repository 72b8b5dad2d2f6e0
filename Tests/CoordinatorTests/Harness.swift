import Coordinator
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Logging
import RuntimeCore
import RuntimeProto
import Storage
import Synchronization

/// A clock the tests move by hand, shared with the engine.
final class ManualMoments: Sendable {
    private let moment = Mutex(Moment(monotonic: .seconds(100), unixMillis: 1_800_000_000_000))

    var now: Moment { moment.withLock { $0 } }

    func advance(_ duration: Duration) {
        moment.withLock { $0 = $0.advanced(by: duration) }
    }
}

/// A fresh directory under the system's temporary directory, removed at deinit.
final class TemporaryDirectory: Sendable {
    let path: String

    init() {
        path = (NSTemporaryDirectory() as NSString).appendingPathComponent("dtr-test-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    var databasePath: String { (path as NSString).appendingPathComponent("state.sqlite") }

    var checkpointsPath: String { (path as NSString).appendingPathComponent("checkpoints") }
}

typealias CoordinatorClient = Dtruntime_V1_Coordinator.Client<InProcessTransport.Client>

/// An engine on a real SQLite file in a temporary directory, driven by a manual clock, served in-process.
struct Harness {
    let directory: TemporaryDirectory
    let clock = ManualMoments()
    let store: SQLiteStateStore
    let engine: CoordinatorEngine
    /// Checkpoints go to `<directory>/checkpoints`, a real local store (the engine's, unless the test wraps it).
    let checkpointStore: LocalBlobStore
    /// The one secret every registration hands out, which ``withClient(interceptors:_:)``'s client presents on every
    /// call: tests of other rules act as any worker they registered. Nil: the engine issues real secrets and the
    /// client presents none of its own (the tests of worker secrets).
    let sharedSecret: String?

    init(
        config: MembershipConfig = .defaults, directory: TemporaryDirectory = TemporaryDirectory(),
        checkpoints: CheckpointSettings = CheckpointSettings(timeout: .seconds(60)), events: EventBus = EventBus(),
        sharedSecret: String? = "harness-worker-secret",
        offActorSyncShards: Int = CoordinatorEngine.defaultOffActorSyncShards,
        offActorSyncMembers: Int = CoordinatorEngine.defaultOffActorSyncMembers, logger: Logger = Logger(label: "test"),
        wrappingCheckpointStore wrap: (LocalBlobStore) -> any BlobStore = { $0 }
    ) throws {
        self.directory = directory
        self.sharedSecret = sharedSecret
        store = try SQLiteStateStore(path: directory.databasePath)
        checkpointStore = try LocalBlobStore(root: directory.checkpointsPath)
        let clock = self.clock
        let store = self.store
        // As `dtr serve` does: datasets and ledgers load off the engine's actor, data calls wait for them.
        engine = CoordinatorEngine(
            membershipConfig: config, restoring: try store.loadMembership(), loadingData: { try store.loadData() },
            offActorSyncShards: offActorSyncShards, offActorSyncMembers: offActorSyncMembers, checkpoints: checkpoints,
            checkpointStore: wrap(checkpointStore),
            restoringCheckpoints: try store.loadCheckpoints(), restoringTasks: try store.loadTasks(), events: events,
            queue: WriteBehindQueue(commit: store.commit),
            issueSecret: Self.issuer(sharedSecret),
            now: { clock.now }, logger: logger)
    }

    private static func issuer(_ shared: String?) -> @Sendable () -> String {
        guard let shared else { return WorkerSecret.issue }
        return { shared }
    }

    /// Runs `body` with an in-process gRPC client of a server backed by the engine (its queue flushing and its effects
    /// running), with the service's own interceptors after `interceptors`.
    func withClient<T: Sendable>(
        interceptors: [any ServerInterceptor] = [], _ body: @Sendable (CoordinatorClient) async throws -> T
    ) async throws -> T {
        let transport = InProcessTransport()
        let clock = self.clock
        let server = GRPCServer(
            transport: transport.server, services: [CoordinatorService(engine: engine)],
            interceptors: interceptors
                + CoordinatorService.interceptors(metrics: engine.metrics, now: { clock.now.monotonic }))
        let queue = engine.queue
        let effects = engine.effects
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await server.serve()
                return nil
            }
            group.addTask {
                await queue.run()
                return nil
            }
            group.addTask {
                await effects.run()
                return nil
            }
            let presenting: [any ClientInterceptor] = sharedSecret.map { [PresentSecret(secret: $0)] } ?? []
            let result = try await withGRPCClient(transport: transport.client, interceptors: presenting) { client in
                try await body(CoordinatorClient(wrapping: client))
            }
            engine.sessions.closeAll()
            server.beginGracefulShutdown()
            effects.stop()
            queue.finish()
            try await group.waitForAll()
            return result
        }
    }
}

/// Adds `secret` as the `dtr-worker-secret` of every call that carries none of its own.
struct PresentSecret: ClientInterceptor {
    let secret: String

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        if request.metadata[stringValues: WorkerSecret.metadataKey].first(where: { _ in true }) == nil {
            request.metadata.addString(secret, forKey: WorkerSecret.metadataKey)
        }
        return try await next(request, context)
    }
}

func registration(
    _ id: String, task: String = "", port: Int32 = 7000, gpus: Int32 = 1
) -> Dtruntime_V1_RegisterWorkerRequest {
    .with {
        $0.workerID = id
        $0.host = "10.0.0.\(port % 250)"
        $0.port = port
        $0.gpuCount = gpus
        $0.taskID = task
    }
}

func heartbeat(_ id: String, step: Int64 = 0, metrics: [String: Double] = [:]) -> Dtruntime_V1_HeartbeatRequest {
    .with {
        $0.workerID = id
        $0.step = step
        $0.metrics = metrics
    }
}

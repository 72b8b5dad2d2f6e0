public import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
public import Logging
import NIOCore
import NIOSSL
import RuntimeCore
public import ServiceLifecycle
public import Storage

/// A built coordinator: its engine, the services to run in a `ServiceGroup`, and the addresses they bind.
public struct CoordinatorRuntime: Sendable {
    /// The engine (for tests and in-process use).
    public let engine: CoordinatorEngine
    /// The services, in start order: engine, gRPC server, HTTP server, event bus, shutdown write budget. A
    /// `ServiceGroup` shuts them down in reverse.
    public let services: [any Service]
    /// The bound ports, once known.
    public let listeners: Listeners
    /// The locked data directory; the lock is held as long as this value lives.
    public let dataDirectory: DataDirectory

    /// Waits until both servers listen and returns their ports.
    public func waitUntilListening() async throws -> (grpc: Int, http: Int) {
        guard let ports = await listeners.waitUntilBound() else { throw CancellationError() }
        return ports
    }
}

/// The composition root: locks the data directory, restores the durable state, and wires engine, gRPC server and
/// HTTP server together. Nothing listens until the services run.
///
/// `logs` is the buffer `/api/logs` serves (the one the log handler fills); `extraServices` are served by the same
/// gRPC server (the benchmarks' no-op baselines).
///
/// - Throws: ``StorageError`` when the data directory is locked by another coordinator or the database cannot be
///   opened; `CoreError` when the host is not an IP address.
public func buildCoordinator(
    config: CoordinatorConfig, logger: Logger, logs: LogBuffer = LogBuffer(),
    extraServices: [any RegistrableRPCService] = []
) throws -> CoordinatorRuntime {
    let address = try bindAddress(host: config.host, port: config.grpcPort)
    let dataDirectory = try DataDirectory(path: config.dataDir)
    let store = try SQLiteStateStore(path: dataDirectory.databasePath)
    let checkpointStore = try BlobStoreFactory.open(
        uri: config.checkpoints.store ?? dataDirectory.defaultCheckpointsPath, endpoint: config.checkpoints.s3Endpoint,
        region: config.checkpoints.s3Region)
    let queue = WriteBehindQueue(commit: store.commit)
    // Start-up phases are logged with their times, so that a slow restart says where its time went.
    let loadStarted = ContinuousClock.now
    let restoredMembership = try store.loadMembership()
    let membershipLoaded = ContinuousClock.now
    let restoredCheckpoints = try store.loadCheckpoints()
    let checkpointsLoaded = ContinuousClock.now
    let restoredTasks = try store.loadTasks()
    let tasksLoaded = ContinuousClock.now
    let clock = SystemMoments()
    let metrics = CoordinatorMetrics()
    let events = EventBus(configuration: config.events, metrics: metrics, now: { clock.now().monotonic })
    let engine = CoordinatorEngine(
        // Datasets and ledgers load off the engine's actor after it starts: a restart answers heartbeats and other
        // calls at once, however big the ledgers are.
        membershipConfig: config.membership, restoring: restoredMembership,
        loadingData: { try store.loadData() },
        barrierMaxPayloadBytes: config.barrierMaxPayloadBytes, checkpoints: config.checkpoints,
        checkpointStore: checkpointStore, restoringCheckpoints: restoredCheckpoints,
        restoringTasks: restoredTasks, metrics: metrics, events: events, queue: queue,
        now: { clock.now() }, logger: logger)
    logger.info(
        "state restored: membership, checkpoints and tasks read (datasets and ledgers load in the background)",
        metadata: [
            "workers": "\(restoredMembership.records.count)", "checkpoints": "\(restoredCheckpoints.count)",
            "tasks": "\(restoredTasks.count)", "read_membership": "\(membershipLoaded - loadStarted)",
            "read_checkpoints": "\(checkpointsLoaded - membershipLoaded)",
            "read_tasks": "\(tasksLoaded - checkpointsLoaded)", "build_engine": "\(ContinuousClock.now - tasksLoaded)",
        ])
    // Log entries at info and above are events too (encoded later, by the streams that send them).
    let logEvents = logs.observe { entry in
        guard entry.level >= .info else { return }
        events.publish(.log) { LogsBody.Entry(entry) }
    }
    let listeners = Listeners(host: config.host)
    // The shell's one clock: rate limits and call durations read it, as the engine does.
    let monotonic: @Sendable () -> Duration = { clock.now().monotonic }

    let grpcServer = GRPCServer(
        transport: .http2NIOPosix(
            address: address,
            transportSecurity: config.tls.map {
                .tls(
                    certificateChain: [.file(path: $0.certificate, format: .pem)],
                    privateKey: .file(path: $0.privateKey, format: .pem))
            } ?? .plaintext,
            config: .defaults {
                // Barrier payloads up to the configured limit, plus room for the message around them.
                $0.rpc.maxRequestPayloadSize = config.barrierMaxPayloadBytes + (1 << 20)
                // A larger message gets RESOURCE_EXHAUSTED naming the limit (the transport alone just resets the stream).
                // Messages being received, on every stream together and on each connection, are bounded too
                // (half-sent ones included); either bound admits at least one message of the largest size.
                let largest = $0.rpc.maxRequestPayloadSize
                $0.channelDebuggingCallbacks.onAcceptHTTP2Stream = GRPCMessageSizeGuard.installer(
                    maxBytes: largest, limitSource: "--barrier-max-payload + 1 MiB",
                    budget: InboundBudget(
                        limit: max(config.grpcInboundBudgetBytes, largest),
                        perConnection: max(config.grpcInboundPerConnectionBytes, largest),
                        // Once big messages were received (or half-sent and abandoned), the freed memory goes back.
                        trimmer: MemoryTrimmer()))
                // Many calls may share one connection (a process hosting many workers, or waiting at barriers)...
                $0.http2.maxConcurrentStreams = 16_384
                // ...and payloads of megabytes should not wait for a window update every 64 KiB.
                $0.http2.targetWindowSize = 8 << 20
                // A connection with no call open for this long is closed (clients reconnect when they call again), so
                // idle connections cannot hold the coordinator's descriptors; workers' session streams keep theirs.
                $0.connection.maxIdleTime = .seconds(5 * 60)
            }),
        services: [CoordinatorService(engine: engine)] + extraServices,
        interceptors: (config.grpcRateLimit > 0
            ? [GRPCRateLimitInterceptor(rate: config.grpcRateLimit, metrics: engine.metrics, now: monotonic)] : [])
            + (config.workerToken.map { [WorkerAuthInterceptor(token: $0)] } ?? [])
            + CoordinatorService.interceptors(metrics: engine.metrics, now: monotonic))

    let connectionLimit = HTTPConnectionLimit(perClient: config.httpMaxConnectionsPerClient, logger: logger)
    let app = Application(
        router: buildRouter(
            engine: engine, listeners: listeners, logs: logs, adminToken: config.adminToken,
            cors: CORSPolicy(origins: config.corsOrigins),
            rateLimits: config.httpRateLimit > 0 ? ClientRateLimits(rate: config.httpRateLimit, now: monotonic) : nil,
            maxBodyBytes: config.httpMaxBodyBytes),
        server: try httpServer(
            tls: config.tls,
            configuration: HTTP1Channel.Configuration(
                additionalChannelHandlers: [connectionLimit.handler()],
                idleTimeout: .nanoseconds(Int64(config.httpIdleTimeout.seconds * 1e9)))),
        configuration: .init(address: .hostname(config.host, port: config.httpPort), serverName: "dtr"),
        onServerRunning: { channel in
            if let port = channel.localAddress?.port { listeners.httpBound(port: port) }
        },
        logger: logger)

    return CoordinatorRuntime(
        engine: engine,
        services: [
            EngineService(engine: engine),
            GRPCServerService(server: grpcServer, engine: engine, listeners: listeners),
            app,
            // Late, so that it shuts down early: open event streams end before the HTTP server drains.
            EventBusService(bus: events, logs: logs, observer: logEvents),
            // Last, so that the queue's write budget starts with the shutdown, before any server drains.
            ShutdownWriteBudget(queue: queue),
        ],
        listeners: listeners, dataDirectory: dataDirectory)
}

/// The gRPC bind address for an IP literal.
private func bindAddress(host: String, port: Int) throws(CoreError) -> GRPCNIOTransportCore.SocketAddress {
    guard (0...65_535).contains(port) else {
        throw .invalid("grpc port", "must be between 0 and 65535 (0 picks a free port)", got: String(port))
    }
    if (try? NIOCore.SocketAddress(ipAddress: host, port: port)) == nil {
        throw .invalid(
            "host", "must be an IP address to bind to, e.g. 127.0.0.1 or 0.0.0.0", got: Validation.quoted(host))
    }
    return host.contains(":") ? .ipv6(host: host, port: port) : .ipv4(host: host, port: port)
}

/// HTTP/1.1 (with the idle timeout and connection cap of `configuration`), over TLS when a certificate and key are
/// configured.
///
/// - Throws: `StorageError` (`invalidArgument`) naming the file that cannot be read as PEM.
private func httpServer(
    tls: (certificate: String, privateKey: String)?, configuration: HTTP1Channel.Configuration
) throws -> HTTPServerBuilder {
    guard let tls else { return .http1(configuration: configuration) }
    let chain: [NIOSSLCertificate]
    let key: NIOSSLPrivateKey
    do {
        chain = try NIOSSLCertificate.fromPEMFile(tls.certificate)
    } catch {
        throw StorageError(.invalidArgument, "cannot read --tls-cert \(tls.certificate) as PEM certificates: \(error)")
    }
    do {
        key = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
    } catch {
        throw StorageError(.invalidArgument, "cannot read --tls-key \(tls.privateKey) as a PEM private key: \(error)")
    }
    let tlsConfiguration = TLSConfiguration.makeServerConfiguration(
        certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
    return try .tls(.http1(configuration: configuration), tlsConfiguration: tlsConfiguration)
}

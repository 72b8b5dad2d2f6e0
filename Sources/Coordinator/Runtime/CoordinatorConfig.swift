public import Checkpoint
public import Logging
public import RuntimeCore

/// Everything `dtr serve` can configure.
public struct CoordinatorConfig: Sendable {
    /// IP address both servers bind to. Default `127.0.0.1`.
    public var host: String
    /// gRPC port for workers; 0 picks a free one. Default 50051.
    public var grpcPort: Int
    /// HTTP port for people and the dashboard; 0 picks a free one. Default 51051.
    public var httpPort: Int
    /// Directory of the state database. Default `./dtr-data`.
    public var dataDir: String
    /// Failure-detector timeouts.
    public var membership: MembershipConfig
    /// Minimum level logged.
    public var logLevel: Logger.Level
    /// Text or JSON lines on standard error.
    public var logFormat: LogFormat
    /// Largest reduce payload one barrier participant may send, in bytes. Default 64 MiB.
    public var barrierMaxPayloadBytes: Int
    /// The most bytes of gRPC request messages received at once, across every call (half-sent messages included):
    /// 512 MiB, and never less than one message of the largest size. Beyond, a message is refused before it is
    /// buffered (RESOURCE_EXHAUSTED with `retry-after-ms`).
    public var grpcInboundBudgetBytes = 512 << 20
    /// The most bytes of gRPC request messages one connection may be receiving at once: 128 MiB, and never less than
    /// one message of the largest size (nor more than ``grpcInboundBudgetBytes``). So one connection cannot hold the
    /// whole budget with half-sent messages and starve the others.
    public var grpcInboundPerConnectionBytes = 128 << 20
    /// Where checkpoints go and how long they are kept.
    public var checkpoints: CheckpointSettings
    /// The token every gRPC call must carry (`authorization: Bearer ...`), if any.
    public var workerToken: BearerToken?
    /// The token every HTTP request but `/api/health` must carry, if any.
    public var adminToken: BearerToken?
    /// Origins whose pages may call the HTTP API (none: same-origin only).
    public var corsOrigins: Set<String>
    /// HTTP requests per second per client IP (bursts of twice that); 0 disables. Default 100.
    public var httpRateLimit: Double
    /// gRPC calls per second per client IP (bursts of twice that; heartbeats have a budget of their own); 0
    /// disables. Default 5000.
    public var grpcRateLimit: Double
    /// Largest HTTP request body, in bytes; larger ones get `413`. Default 1 MiB.
    public var httpMaxBodyBytes: Int
    /// An HTTP connection that sends nothing (no request, or no part of one) for this long is closed. Default 30 s.
    public var httpIdleTimeout: Duration = .seconds(30)
    /// HTTP connections one client address may hold open at once; more are closed at once. Default 128.
    public var httpMaxConnectionsPerClient = 128
    /// PEM certificate chain and private key: both servers speak TLS when set.
    public var tls: (certificate: String, privateKey: String)?
    /// The limits of `/api/events` (replay buffer, client queues, keep-alives, tickets).
    public var events: EventBus.Configuration

    /// Creates a configuration; every parameter has the documented default.
    public init(
        host: String = "127.0.0.1", grpcPort: Int = 50051, httpPort: Int = 51051, dataDir: String = "./dtr-data",
        membership: MembershipConfig = .defaults, logLevel: Logger.Level = .info, logFormat: LogFormat = .text,
        barrierMaxPayloadBytes: Int = 64 << 20,
        checkpoints: CheckpointSettings = CheckpointSettings(), workerToken: BearerToken? = nil,
        adminToken: BearerToken? = nil, corsOrigins: Set<String> = [], httpRateLimit: Double = 100,
        grpcRateLimit: Double = 5000, httpMaxBodyBytes: Int = BodyLimitMiddleware.defaultMaxBytes,
        tls: (certificate: String, privateKey: String)? = nil,
        events: EventBus.Configuration = EventBus.Configuration()
    ) {
        self.host = host
        self.grpcPort = grpcPort
        self.httpPort = httpPort
        self.dataDir = dataDir
        self.membership = membership
        self.logLevel = logLevel
        self.logFormat = logFormat
        self.barrierMaxPayloadBytes = barrierMaxPayloadBytes
        self.checkpoints = checkpoints
        self.workerToken = workerToken
        self.adminToken = adminToken
        self.corsOrigins = corsOrigins
        self.httpRateLimit = httpRateLimit
        self.grpcRateLimit = grpcRateLimit
        self.httpMaxBodyBytes = httpMaxBodyBytes
        self.tls = tls
        self.events = events
    }
}

/// Checkpoint storage and lifecycle settings.
public struct CheckpointSettings: Sendable {
    /// `file:///abs/path`, an absolute path, or `s3://bucket/prefix`; nil means `<data dir>/checkpoints`.
    public var store: String?
    /// S3 endpoint URL (e.g. `http://127.0.0.1:8333`); empty for `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, then AWS.
    public var s3Endpoint: String
    /// S3 signing region; empty for `AWS_REGION`, `AWS_DEFAULT_REGION`, then `us-east-1`.
    public var s3Region: String
    /// How long a checkpoint may stay pending before it is aborted. Default 15 minutes.
    public var timeout: Duration
    /// Which committed checkpoints to keep. Default: the last 5.
    public var retention: RetentionPolicy
    /// How often the store is swept for leftovers. Default 5 minutes.
    public var sweepInterval: Duration
    /// How many checkpoints of one task may be pending at once; opening another is `RESOURCE_EXHAUSTED`. Default 16.
    public var maxPending = 16

    /// Creates settings; every parameter has the documented default.
    public init(
        store: String? = nil, s3Endpoint: String = "", s3Region: String = "",
        timeout: Duration = .seconds(15 * 60), retention: RetentionPolicy = .default,
        sweepInterval: Duration = .seconds(5 * 60)
    ) {
        self.store = store
        self.s3Endpoint = s3Endpoint
        self.s3Region = s3Region
        self.timeout = timeout
        self.retention = retention
        self.sweepInterval = sweepInterval
    }
}

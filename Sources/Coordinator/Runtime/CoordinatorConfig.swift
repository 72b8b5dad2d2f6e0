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
    /// Largest reduce payload one barrier participant may send, in bytes. Default 64 MiB.
    public var barrierMaxPayloadBytes: Int

    /// Creates a configuration; every parameter has the documented default.
    public init(
        host: String = "127.0.0.1", grpcPort: Int = 50051, httpPort: Int = 51051, dataDir: String = "./dtr-data",
        membership: MembershipConfig = .defaults, logLevel: Logger.Level = .info, barrierMaxPayloadBytes: Int = 64 << 20
    ) {
        self.host = host
        self.grpcPort = grpcPort
        self.httpPort = httpPort
        self.dataDir = dataDir
        self.membership = membership
        self.logLevel = logLevel
        self.barrierMaxPayloadBytes = barrierMaxPayloadBytes
    }
}

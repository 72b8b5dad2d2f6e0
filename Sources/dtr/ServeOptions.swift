import ArgumentParser
import Checkpoint
import Coordinator
import Logging
import RuntimeCore

/// The options of `dtr serve`. Each falls back to an environment variable, then to the default.
struct ServeOptions: ParsableArguments {
    @Option(help: "IP address both servers bind to [env: DTR_HOST] (default: 127.0.0.1).")
    var host: String?

    @Option(help: "gRPC port for workers; 0 picks a free one [env: DTR_GRPC_PORT] (default: 50051).")
    var grpcPort: Int?

    @Option(help: "HTTP port for the API and dashboard; 0 picks a free one [env: DTR_HTTP_PORT] (default: 51051).")
    var httpPort: Int?

    @Option(help: "Directory of the state database [env: DTR_DATA_DIR] (default: ./dtr-data).")
    var dataDir: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical [env: DTR_LOG_LEVEL] (default: info).")
    var logLevel: String?

    @Option(help: "text or json: the format of log lines on standard error [env: DTR_LOG_FORMAT] (default: text).")
    var logFormat: String?

    @Option(help: "How often workers heartbeat, e.g. 500ms, 1s [env: DTR_HEARTBEAT_INTERVAL] (default: 1s).")
    var heartbeatInterval: String?

    @Option(help: "Silence before a worker is SUSPECT [env: DTR_SUSPECT_AFTER] (default: 2s).")
    var suspectAfter: String?

    @Option(help: "Silence before a worker is DEAD and loses its rank [env: DTR_DEAD_AFTER] (default: 5s).")
    var deadAfter: String?

    @Option(help: "Largest reduce payload per barrier participant [env: DTR_BARRIER_MAX_PAYLOAD] (default: 64MiB).")
    var barrierMaxPayload: String?

    @Option(
        help: """
            Where checkpoints go: file:///abs/path, an absolute path, or s3://bucket/prefix \
            [env: DTR_CHECKPOINT_STORE] (default: <data dir>/checkpoints).
            """)
    var checkpointStore: String?

    @Option(
        help: """
            S3 endpoint URL, e.g. http://127.0.0.1:8333; credentials come from AWS_ACCESS_KEY_ID and \
            AWS_SECRET_ACCESS_KEY [env: DTR_CHECKPOINT_S3_ENDPOINT, then AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL] (default: AWS).
            """)
    var checkpointS3Endpoint: String?

    @Option(
        help:
            "S3 signing region [env: DTR_CHECKPOINT_S3_REGION, then AWS_REGION, AWS_DEFAULT_REGION] (default: us-east-1)."
    )
    var checkpointS3Region: String?

    @Option(
        help:
            "How long a checkpoint may stay incomplete before it is aborted [env: DTR_CHECKPOINT_TIMEOUT] (default: 15m)."
    )
    var checkpointTimeout: String?

    @Option(
        help: """
            Checkpoints of one task that may be pending at once; saving another step is refused until one commits, \
            fails or times out [env: DTR_CHECKPOINT_MAX_PENDING] (default: 16).
            """)
    var checkpointMaxPending: Int?

    @Option(
        help:
            "Committed checkpoints kept per task, newest first; 0 keeps all [env: DTR_CHECKPOINT_KEEP_LAST] (default: 5)."
    )
    var checkpointKeepLast: Int?

    @Option(help: "Also keep the best N by --checkpoint-best-metric [env: DTR_CHECKPOINT_KEEP_BEST] (default: 0).")
    var checkpointKeepBest: Int?

    @Option(
        help: "Metric that ranks checkpoints for --checkpoint-keep-best, e.g. loss [env: DTR_CHECKPOINT_BEST_METRIC].")
    var checkpointBestMetric: String?

    @Option(
        help: "min or max: which --checkpoint-best-metric is better [env: DTR_CHECKPOINT_BEST_MODE] (default: min).")
    var checkpointBestMode: String?

    @Option(
        help: """
            Token every worker must send (gRPC metadata authorization: Bearer ...; the SDK reads DTR_WORKER_TOKEN); \
            at least 16 printable characters [env: DTR_WORKER_TOKEN] (default: none).
            """)
    var workerToken: String?

    @Option(
        help: """
            Token every HTTP request but /api/health must send (Authorization: Bearer ...) [env: DTR_ADMIN_TOKEN] \
            (default: none).
            """)
    var adminToken: String?

    @Option(
        help: """
            Comma-separated origins whose web pages may call the HTTP API, e.g. https://dash.example.com \
            [env: DTR_CORS_ORIGINS] (default: none, same-origin only).
            """)
    var corsOrigins: String?

    @Option(
        help:
            "HTTP requests per second per client IP, bursts of twice that; 0 disables [env: DTR_HTTP_RATE_LIMIT] (default: 100)."
    )
    var httpRateLimit: Int?

    @Option(
        help: """
            gRPC calls per second per client IP, bursts of twice that; heartbeats have a budget of their own; 0 \
            disables [env: DTR_GRPC_RATE_LIMIT] (default: 5000).
            """)
    var grpcRateLimit: Int?

    @Option(
        help: """
            Most bytes of gRPC request messages one connection may be receiving at once (half-sent ones included; \
            at least one message of the largest size); beyond, a message is refused with RESOURCE_EXHAUSTED and \
            retried by the SDK [env: DTR_GRPC_INBOUND_PER_CONNECTION] (default: 128MiB).
            """)
    var grpcInboundPerConnection: String?

    @Option(help: "Largest HTTP request body; larger ones get 413 [env: DTR_HTTP_MAX_BODY] (default: 1MiB).")
    var httpMaxBody: String?

    @Option(
        help: """
            Close an HTTP connection that sends nothing for this long (no request, or no part of one; event streams \
            being answered stay open) [env: DTR_HTTP_IDLE_TIMEOUT] (default: 30s).
            """)
    var httpIdleTimeout: String?

    @Option(
        help: """
            HTTP connections one client address may hold open at once; more are closed at once \
            [env: DTR_HTTP_MAX_CONNECTIONS_PER_CLIENT] (default: 128).
            """)
    var httpMaxConnectionsPerClient: Int?

    @Option(help: "PEM certificate chain: both servers speak TLS (needs --tls-key) [env: DTR_TLS_CERT].")
    var tlsCert: String?

    @Option(help: "PEM private key of --tls-cert [env: DTR_TLS_KEY].")
    var tlsKey: String?

    @Flag(help: "Allow binding a non-loopback --host without both tokens (only on a network you trust).")
    var insecure = false

    @Flag(
        help: """
            Also run a small swarm of simulated workers (two tasks, of 4 and 8 workers) against this coordinator over \
            loopback, so the dashboard shows a live cluster; they are marked demo in /api/workers [env: DEMO_MODE=true].
            """)
    var demo = false

    // Hidden: for tests that need the replay buffer passed, or a ticket expired, without thousands of events or a
    // minute's wait.
    @Option(
        help: ArgumentHelp("Events /api/events keeps for reconnecting clients (default: 4096).", visibility: .hidden))
    var eventsBuffer: Int?

    @Option(help: ArgumentHelp("How long an /api/events ticket is accepted (default: 60s).", visibility: .hidden))
    var eventsTicketLifetime: String?

    /// Resolves flags, then environment variables, then defaults, into a checked configuration.
    func resolve(environment: [String: String]) throws -> CoordinatorConfig {
        let env = Environment(values: environment)
        let defaults = MembershipConfig.defaults
        let membership: MembershipConfig
        do {
            membership = try MembershipConfig(
                heartbeatInterval: try env.duration(
                    heartbeatInterval, "DTR_HEARTBEAT_INTERVAL", flag: "--heartbeat-interval",
                    default: defaults.heartbeatInterval),
                suspectAfter: try env.duration(
                    suspectAfter, "DTR_SUSPECT_AFTER", flag: "--suspect-after", default: defaults.suspectAfter),
                deadAfter: try env.duration(
                    deadAfter, "DTR_DEAD_AFTER", flag: "--dead-after", default: defaults.deadAfter))
        } catch let error as CoreError {
            throw ValidationError(error.message)
        }
        var config = CoordinatorConfig(
            host: host ?? env.values["DTR_HOST"] ?? "127.0.0.1",
            grpcPort: try env.port(grpcPort, "DTR_GRPC_PORT", flag: "--grpc-port", default: 50051),
            httpPort: try env.port(httpPort, "DTR_HTTP_PORT", flag: "--http-port", default: 51051),
            dataDir: dataDir ?? env.values["DTR_DATA_DIR"] ?? "./dtr-data",
            membership: membership,
            logLevel: try env.logLevel(logLevel, "DTR_LOG_LEVEL", flag: "--log-level", default: .info),
            logFormat: try env.value(
                logFormat, "DTR_LOG_FORMAT", flag: "--log-format", default: .text, rule: "must be text or json",
                parse: { LogFormat(rawValue: $0.lowercased()) }),
            barrierMaxPayloadBytes: try env.size(
                barrierMaxPayload, "DTR_BARRIER_MAX_PAYLOAD", flag: "--barrier-max-payload", default: 64 << 20),
            checkpoints: try checkpoints(env),
            workerToken: try token(workerToken, env.values["DTR_WORKER_TOKEN"], flag: "--worker-token"),
            adminToken: try token(adminToken, env.values["DTR_ADMIN_TOKEN"], flag: "--admin-token"),
            corsOrigins: try origins(corsOrigins ?? env.values["DTR_CORS_ORIGINS"]),
            httpRateLimit: Double(
                try env.count(httpRateLimit, "DTR_HTTP_RATE_LIMIT", flag: "--http-rate-limit", default: 100)),
            grpcRateLimit: Double(
                try env.count(grpcRateLimit, "DTR_GRPC_RATE_LIMIT", flag: "--grpc-rate-limit", default: 5000)),
            httpMaxBodyBytes: try env.size(
                httpMaxBody, "DTR_HTTP_MAX_BODY", flag: "--http-max-body", default: BodyLimitMiddleware.defaultMaxBytes),
            tls: try tls(env), events: try events(env))
        config.grpcInboundPerConnectionBytes = try env.size(
            grpcInboundPerConnection, "DTR_GRPC_INBOUND_PER_CONNECTION", flag: "--grpc-inbound-per-connection",
            default: config.grpcInboundPerConnectionBytes)
        config.httpIdleTimeout = try env.duration(
            httpIdleTimeout, "DTR_HTTP_IDLE_TIMEOUT", flag: "--http-idle-timeout", default: config.httpIdleTimeout)
        config.httpMaxConnectionsPerClient = try env.count(
            httpMaxConnectionsPerClient, "DTR_HTTP_MAX_CONNECTIONS_PER_CLIENT",
            flag: "--http-max-connections-per-client",
            default: config.httpMaxConnectionsPerClient)
        guard config.httpMaxConnectionsPerClient >= 1 else {
            throw ValidationError(
                "--http-max-connections-per-client must be at least 1 (got \(config.httpMaxConnectionsPerClient))")
        }
        guard config.httpIdleTimeout > .zero, config.httpIdleTimeout <= .seconds(24 * 3600) else {
            throw ValidationError(
                "--http-idle-timeout must be more than 0 and at most 1440m, a day (got \(config.httpIdleTimeout))")
        }
        let loopback = ["127.0.0.1", "::1", "localhost"].contains(config.host) || config.host.hasPrefix("127.")
        if !loopback, !insecure, config.workerToken == nil || config.adminToken == nil {
            throw ValidationError(
                "--host \(config.host) exposes the coordinator beyond this machine: set DTR_WORKER_TOKEN and "
                    + "DTR_ADMIN_TOKEN (or --worker-token and --admin-token), or pass --insecure on a network you trust"
            )
        }
        return config
    }

    /// Whether to run the demo swarm: `--demo`, else `DEMO_MODE` (true/false, 1/0, yes/no, on/off).
    func demoMode(environment: [String: String]) throws -> Bool {
        var enabled = demo
        if !demo, let text = environment["DEMO_MODE"] {
            switch text.lowercased() {
            case "true", "1", "yes", "on": enabled = true
            case "false", "0", "no", "off", "": enabled = false
            default: throw ValidationError("DEMO_MODE must be true or false (got \"\(text)\")")
            }
        }
        if enabled, tlsCert ?? environment["DTR_TLS_CERT"] != nil {
            throw ValidationError(
                "the demo swarm connects to the coordinator over plaintext loopback: run --demo without --tls-cert "
                    + "and --tls-key (DTR_TLS_CERT, DTR_TLS_KEY)")
        }
        return enabled
    }

    /// The worker token as given (the demo swarm presents it like any worker).
    func workerTokenText(environment: [String: String]) -> String? {
        workerToken ?? environment["DTR_WORKER_TOKEN"]
    }

    private func events(_ env: Environment) throws -> EventBus.Configuration {
        var events = EventBus.Configuration()
        if let eventsBuffer {
            guard (1...1_000_000).contains(eventsBuffer) else {
                throw ValidationError("--events-buffer must be between 1 and 1000000 (got \(eventsBuffer))")
            }
            events.replayCapacity = eventsBuffer
        }
        events.ticketLifetime = try env.duration(
            eventsTicketLifetime, "", flag: "--events-ticket-lifetime", default: events.ticketLifetime)
        return events
    }

    private func tls(_ env: Environment) throws -> (certificate: String, privateKey: String)? {
        let certificate = tlsCert ?? env.values["DTR_TLS_CERT"]
        let key = tlsKey ?? env.values["DTR_TLS_KEY"]
        switch (certificate, key) {
        case (nil, nil): return nil
        case (let certificate?, let key?): return (certificate, key)
        default: throw ValidationError("--tls-cert and --tls-key go together: give both, or neither")
        }
    }

    private func origins(_ text: String?) throws -> Set<String> {
        let origins = (text ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        if let bad = origins.first(where: { !CORSPolicy.isValidOrigin($0) }) {
            throw ValidationError(
                "--cors-origins entries must be origins such as https://dash.example.com:8443, without a path "
                    + "(got \"\(bad)\")")
        }
        return Set(origins)
    }

    private func token(_ flagValue: String?, _ envValue: String?, flag: String) throws -> BearerToken? {
        guard let text = flagValue ?? envValue else { return nil }
        guard let token = BearerToken(text) else {
            let source = flagValue != nil ? flag : flag == "--worker-token" ? "DTR_WORKER_TOKEN" : "DTR_ADMIN_TOKEN"
            throw ValidationError("\(source) must be 16-4096 printable ASCII characters without spaces")
        }
        return token
    }

    private func checkpoints(_ env: Environment) throws -> CheckpointSettings {
        let keepLast = try env.count(
            checkpointKeepLast, "DTR_CHECKPOINT_KEEP_LAST", flag: "--checkpoint-keep-last", default: 5)
        let keepBest = try env.count(
            checkpointKeepBest, "DTR_CHECKPOINT_KEEP_BEST", flag: "--checkpoint-keep-best", default: 0)
        let metric = checkpointBestMetric ?? env.values["DTR_CHECKPOINT_BEST_METRIC"] ?? ""
        if keepBest > 0, metric.isEmpty {
            throw ValidationError("--checkpoint-keep-best needs --checkpoint-best-metric (e.g. loss)")
        }
        let mode = try env.value(
            checkpointBestMode, "DTR_CHECKPOINT_BEST_MODE", flag: "--checkpoint-best-mode", default: .min,
            rule: "must be min or max", parse: { RetentionPolicy.Mode(rawValue: $0.lowercased()) })
        let timeout = try env.duration(
            checkpointTimeout, "DTR_CHECKPOINT_TIMEOUT", flag: "--checkpoint-timeout", default: .seconds(15 * 60))
        let maxPending = try env.count(
            checkpointMaxPending, "DTR_CHECKPOINT_MAX_PENDING", flag: "--checkpoint-max-pending", default: 16)
        guard maxPending >= 1 else {
            throw ValidationError("--checkpoint-max-pending must be at least 1 (got \(maxPending))")
        }
        var settings = CheckpointSettings(
            store: checkpointStore ?? env.values["DTR_CHECKPOINT_STORE"],
            // Empty: the store falls back to the variables boto3 reads (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL;
            // AWS_REGION, AWS_DEFAULT_REGION), so workers and coordinator find the same server.
            s3Endpoint: checkpointS3Endpoint ?? env.values["DTR_CHECKPOINT_S3_ENDPOINT"] ?? "",
            s3Region: checkpointS3Region ?? env.values["DTR_CHECKPOINT_S3_REGION"] ?? "",
            timeout: timeout,
            retention: RetentionPolicy(keepLast: keepLast, keepBest: keepBest, metric: metric, mode: mode))
        settings.maxPending = maxPending
        return settings
    }
}

/// Typed lookups of `DTR_*` variables with messages that name the flag and the variable.
private struct Environment {
    var values: [String: String]

    /// The flag's value, else the variable's, else the default; `parse` turns text into a value or nil.
    func value<T>(
        _ flagValue: String?, _ name: String, flag: String, default fallback: T, rule: String,
        parse: (String) -> T?
    ) throws -> T {
        let text: String
        let source: String
        if let flagValue {
            (text, source) = (flagValue, flag)
        } else if let env = values[name] {
            (text, source) = (env, name)
        } else {
            return fallback
        }
        guard let parsed = parse(text) else { throw ValidationError("\(source) \(rule) (got \"\(text)\")") }
        return parsed
    }

    func port(_ flagValue: Int?, _ name: String, flag: String, default fallback: Int) throws -> Int {
        try value(
            flagValue.map(String.init), name, flag: flag, default: fallback,
            rule: "must be a port number between 0 and 65535 (0 picks a free port)"
        ) { text in Int(text).flatMap { (0...65_535).contains($0) ? $0 : nil } }
    }

    func count(_ flagValue: Int?, _ name: String, flag: String, default fallback: Int) throws -> Int {
        try value(
            flagValue.map(String.init), name, flag: flag, default: fallback,
            rule: "must be a whole number between 0 and 1000000"
        ) { text in Int(text).flatMap { (0...1_000_000).contains($0) ? $0 : nil } }
    }

    func duration(_ flagValue: String?, _ name: String, flag: String, default fallback: Duration) throws -> Duration {
        try value(
            flagValue, name, flag: flag, default: fallback, rule: "must be a duration such as 500ms, 1s, 1.5s or 2m",
            parse: DurationArgument.parse)
    }

    func size(_ flagValue: String?, _ name: String, flag: String, default fallback: Int) throws -> Int {
        try value(
            flagValue, name, flag: flag, default: fallback,
            rule: "must be a size between 1 byte and 1GiB, such as 1048576, 512KiB or 64MiB"
        ) { ByteSizeArgument.parse($0).flatMap { $0 <= 1 << 30 ? $0 : nil } }
    }

    func logLevel(_ flagValue: String?, _ name: String, flag: String, default fallback: Logger.Level) throws
        -> Logger.Level
    {
        try value(
            flagValue, name, flag: flag, default: fallback,
            rule: "must be one of trace, debug, info, notice, warning, error, critical"
        ) { Logger.Level(rawValue: $0.lowercased()) }
    }
}

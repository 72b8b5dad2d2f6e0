import Coordinator
import Foundation
import Hummingbird
import HummingbirdTesting
import RuntimeCore
import Testing

@Suite("HTTP tasks (router)")
struct TaskHTTPTests {
    let http = HTTPRouterTests()

    @Test("create, list, stop: workers are told STOP, and the task is stopped once they have left")
    func lifecycle() async throws {
        let harness = try Harness()
        try await http.withQueue(harness) {
            let create =
                #"{"name":"mnist","world_size":2,"dataset":"digits","epochs":3,"config":{"lr":0.1,"model":"mlp"}}"#
            try await http.app(harness).test(.router) { client in
                try await client.execute(uri: "/api/tasks", method: .post, body: ByteBuffer(string: create)) {
                    response in
                    #expect(response.status == .created)
                    let body = try json(response.body)
                    #expect(body["task_id"] as? String == "mnist" && body["status"] as? String == "pending")
                    #expect(body["world_size"] as? Int == 2 && body["epochs"] as? Int == 3)
                    #expect(body["created_by"] as? String == "api" && body["workers"] as? Int == 0)
                    #expect((body["config"] as? [String: Any])?["model"] as? String == "mlp")
                }
            }
            try await http.register(harness, ["mnist/a", "mnist/b", "other/c"])
            try await http.app(harness).test(.router) { client in
                try await client.execute(uri: "/api/tasks", method: .get) { response in
                    let tasks = try #require(try json(response.body)["tasks"] as? [[String: Any]])
                    #expect(tasks.map { $0["task_id"] as? String } == ["mnist", "other"])
                    #expect(tasks[0]["status"] as? String == "running" && tasks[0]["workers"] as? Int == 2)
                    #expect(tasks[1]["created_by"] as? String == "worker")
                }
                try await client.execute(uri: "/api/tasks/mnist/stop", method: .post) { response in
                    #expect(response.status == .ok)
                    let body = try json(response.body)
                    #expect(body["status"] as? String == "stopping")
                }
            }
            let told = try await harness.engine.heartbeat(WorkerID("a"), step: 1, metrics: [:])
            #expect(told.command == .stop && told.reason == "task mnist is stopping")
            #expect(try await harness.engine.heartbeat(WorkerID("c"), step: 1, metrics: [:]).command == .proceed)
            _ = try await harness.engine.deregister(WorkerID("a"), reason: "stopped")
            _ = try await harness.engine.deregister(WorkerID("b"), reason: "stopped")
            try await http.app(harness).test(.router) { client in
                try await client.execute(uri: "/api/tasks/mnist", method: .get) { response in
                    let body = try json(response.body)
                    #expect(body["status"] as? String == "stopped" && body["workers"] as? Int == 0)
                    #expect(body["reason"] as? String == "stop requested; every worker left")
                    #expect(body["ended_at"] is String)
                }
            }
        }
        // Durable: a restarted coordinator knows the task ended.
        let restarted = try Harness(directory: harness.directory)
        #expect(await restarted.engine.taskList().first?.record.status == .stopped)
    }

    @Test("bad requests get a JSON error and change nothing")
    func badInput() async throws {
        let harness = try Harness()
        try await http.withQueue(harness) {
            try await http.app(harness).test(.router) { client in
                let cases: [(String, HTTPRequest.Method, String?, HTTPResponse.Status, String)] = [
                    ("/api/tasks", .post, "not json", .badRequest, "the body must be a JSON object"),
                    ("/api/tasks", .post, #"{"world_size":2}"#, .badRequest, "the body must be a JSON object"),
                    ("/api/tasks", .post, #"{"name":"../x"}"#, .badRequest, "name must be 1-64 characters"),
                    // Empty is refused here, so the message does not offer it ("or empty for default").
                    (
                        "/api/tasks", .post, #"{"name":""}"#, .badRequest,
                        #"name must be 1-64 characters of [A-Za-z0-9._-] (got "")"#
                    ),
                    ("/api/tasks", .post, #"{"name":"a","world_size":-1}"#, .badRequest, "world_size must be between"),
                    ("/api/tasks", .post, #"{"name":"a","epochs":0}"#, .badRequest, "epochs must be between 1"),
                    ("/api/tasks/ghost/stop", .post, nil, .notFound, "no task ghost"),
                    ("/api/tasks/ghost", .get, nil, .notFound, "no task ghost"),
                ]
                for (uri, method, body, status, message) in cases {
                    try await client.execute(uri: uri, method: method, body: body.map { ByteBuffer(string: $0) }) {
                        response in
                        #expect(response.status == status, "\(uri) \(body ?? "")")
                        let error = try #require(try json(response.body)["error"] as? [String: Any])
                        #expect((error["message"] as? String)?.contains(message) == true, "\(error)")
                    }
                }
                try await client.execute(uri: "/api/tasks", method: .post, body: ByteBuffer(string: #"{"name":"a"}"#)) {
                    #expect($0.status == .created)
                }
                try await client.execute(uri: "/api/tasks", method: .post, body: ByteBuffer(string: #"{"name":"a"}"#)) {
                    response in
                    #expect(response.status == .conflict)
                    let error = try #require(try json(response.body)["error"] as? [String: Any])
                    #expect(error["code"] as? String == "already_exists")
                }
            }
        }
        #expect(await harness.engine.taskList().map(\.record.id) == ["a"])
    }
}

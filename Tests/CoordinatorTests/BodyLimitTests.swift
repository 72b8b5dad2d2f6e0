import Coordinator
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("HTTP body limit (router)")
struct BodyLimitTests {
    let http = HTTPRouterTests()

    /// A `POST /api/tasks` body of exactly `size` bytes (the padding is a config string).
    func createBody(_ name: String, size: Int) -> ByteBuffer {
        let empty = #"{"name":"\#(name)","config":{"pad":""}}"#
        let body = #"{"name":"\#(name)","config":{"pad":"\#(String(repeating: "x", count: size - empty.utf8.count))"}}"#
        precondition(body.utf8.count == size)
        return ByteBuffer(string: body)
    }

    @Test("a body at the limit is handled; one byte over is 413 with a JSON error naming the flag, and changes nothing")
    func limit() async throws {
        let harness = try Harness()
        try await http.withQueue(harness) {
            let app = Application(
                router: buildRouter(
                    engine: harness.engine, listeners: Listeners(host: "127.0.0.1"), maxBodyBytes: 1024))
            try await app.test(.router) { client in
                try await client.execute(uri: "/api/tasks", method: .post, body: createBody("fits", size: 1024)) {
                    #expect($0.status == .created)
                }
                for size in [1025, 64 << 10] {
                    try await client.execute(
                        uri: "/api/tasks", method: .post, body: createBody("too-big", size: size)
                    ) { response in
                        #expect(response.status == .contentTooLarge)
                        #expect(response.headers[.contentType] == "application/json; charset=utf-8")
                        let error = try #require(try json(response.body)["error"] as? [String: Any])
                        #expect(error["code"] as? String == "invalid_argument")
                        #expect(error["reason"] as? String == "TOO_LARGE")
                        #expect(
                            error["message"] as? String
                                == "request body is larger than 1 KiB (--http-max-body): send a smaller body, or "
                                + "raise the coordinator's --http-max-body")
                    }
                }
                // Routes that ignore their body are covered too: the stop below is refused, the task keeps running.
                try await client.execute(
                    uri: "/api/tasks/fits/stop", method: .post, body: ByteBuffer(repeating: 0x20, count: 2048)
                ) { #expect($0.status == .contentTooLarge) }
                try await client.execute(uri: "/api/tasks", method: .get) { response in
                    let tasks = try #require(try json(response.body)["tasks"] as? [[String: Any]])
                    #expect(tasks.map { $0["task_id"] as? String } == ["fits"], "the refused body created nothing")
                    #expect(tasks.first?["status"] as? String == "pending", "the refused stop stopped nothing")
                }
            }
        }
    }

    @Test("the default is 1 MiB; a limit raised past Hummingbird's own 2 MiB decode limit lets bodies through")
    func defaultAndRaised() async throws {
        #expect(BodyLimitMiddleware.defaultMaxBytes == 1 << 20)
        #expect(CoordinatorConfig().httpMaxBodyBytes == 1 << 20)
        let harness = try Harness()
        try await http.withQueue(harness) {
            try await http.app(harness).test(.router) { client in
                try await client.execute(
                    uri: "/api/tasks", method: .post, body: createBody("big", size: (1 << 20) + 1)
                ) { response in
                    #expect(response.status == .contentTooLarge)
                    let error = try #require(try json(response.body)["error"] as? [String: Any])
                    #expect((error["message"] as? String)?.hasPrefix("request body is larger than 1 MiB") == true)
                }
            }
            // Raised past the 2 MiB Hummingbird applies by default, a 3 MiB body reaches the route (whose own rule,
            // a config of at most 64 KiB, then refuses it with 400: the body was read whole, not cut off).
            let raised = Application(
                router: buildRouter(
                    engine: harness.engine, listeners: Listeners(host: "127.0.0.1"), maxBodyBytes: 4 << 20))
            try await raised.test(.router) { client in
                try await client.execute(uri: "/api/tasks", method: .post, body: createBody("big", size: 3 << 20)) {
                    response in
                    #expect(response.status == .badRequest)
                    let error = try #require(try json(response.body)["error"] as? [String: Any])
                    #expect((error["message"] as? String)?.contains("config") == true, "\(error)")
                }
            }
        }
    }
}

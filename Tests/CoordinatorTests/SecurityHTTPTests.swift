import Coordinator
import GRPCCore
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("HTTP security: admin token and CORS (router)")
struct SecurityHTTPTests {
    func app(_ harness: Harness, token: String? = nil, origins: Set<String> = []) throws -> some ApplicationProtocol {
        Application(
            router: buildRouter(
                engine: harness.engine, listeners: Listeners(host: "127.0.0.1"),
                adminToken: try token.map { try #require(BearerToken($0)) }, cors: CORSPolicy(origins: origins)))
    }

    @Test("the admin token guards everything but health")
    func adminToken() async throws {
        let harness = try Harness()
        try await app(harness, token: "admin-token-0123456789").test(.router) { client in
            try await client.execute(uri: "/api/health", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/workers", method: .get) { response in
                #expect(response.status == .unauthorized)
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect(error["code"] as? String == "unauthenticated")
            }
            try await client.execute(
                uri: "/api/workers", method: .get, headers: [.authorization: "Bearer admin-token-0123456789"]
            ) { #expect($0.status == .ok) }
            try await client.execute(
                uri: "/api/workers", method: .get, headers: [.authorization: "Bearer admin-token-012345678"]
            ) { #expect($0.status == .unauthorized) }
        }
    }

    @Test("preflights from listed origins are answered; other origins get no CORS headers; errors carry them too")
    func cors() async throws {
        let harness = try Harness()
        let origin = "https://dash.example.com"
        try await app(harness, token: "admin-token-0123456789", origins: [origin]).test(.router) { client in
            let preflight: HTTPFields = [
                .origin: origin, .accessControlRequestMethod: "POST", .accessControlRequestHeaders: "authorization",
            ]
            try await client.execute(uri: "/api/tasks", method: .options, headers: preflight) { response in
                #expect(response.status == .noContent)
                #expect(response.headers[.accessControlAllowOrigin] == origin)
                #expect(response.headers[.accessControlAllowHeaders]?.contains("Authorization") == true)
                #expect(response.headers[.accessControlAllowMethods]?.contains("POST") == true)
            }
            var foreign = preflight
            foreign[.origin] = "https://evil.example.com"
            try await client.execute(uri: "/api/tasks", method: .options, headers: foreign) { response in
                #expect(response.status == .forbidden && response.headers[.accessControlAllowOrigin] == nil)
            }
            try await client.execute(uri: "/api/workers", method: .get, headers: [.origin: origin]) { response in
                #expect(response.status == .unauthorized, "no token")
                #expect(response.headers[.accessControlAllowOrigin] == origin, "so the page can read why")
            }
            try await client.execute(uri: "/api/health", method: .get) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil, "no Origin, no CORS headers")
            }
        }
        try await app(harness).test(.router) { client in
            try await client.execute(uri: "/api/health", method: .get, headers: [.origin: origin]) { response in
                #expect(response.headers[.accessControlAllowOrigin] == nil, "same-origin only by default")
            }
        }
    }
}

@Suite("Rate limits (router and in-process gRPC)")
struct RateLimitTests {
    @Test("HTTP: a burst beyond the limit gets 429 with Retry-After and a JSON error")
    func http() async throws {
        let harness = try Harness()
        let app = Application(
            router: buildRouter(
                engine: harness.engine, listeners: Listeners(host: "127.0.0.1"),
                rateLimits: ClientRateLimits(rate: 1, now: { harness.clock.now.monotonic })))
        try await app.test(.router) { client in
            for _ in 0..<2 {
                try await client.execute(uri: "/api/health", method: .get) { #expect($0.status == .ok) }
            }
            try await client.execute(uri: "/api/health", method: .get) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] == "1")
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect(error["code"] as? String == "resource_exhausted")
                #expect(error["reason"] as? String == "RATE_LIMITED")
                #expect((error["message"] as? String)?.contains("--http-rate-limit") == true)
            }
        }
    }

    @Test("gRPC: calls beyond the limit are RESOURCE_EXHAUSTED with retry-after-ms; heartbeats have their own budget")
    func grpc() async throws {
        let harness = try Harness()
        try await harness.withClient(interceptors: [
            GRPCRateLimitInterceptor(rate: 1, now: { harness.clock.now.monotonic })
        ]) { client in
            _ = try await client.registerWorker(registration("a"))
            _ = try await client.registerWorker(registration("b"))
            let error = await #expect(throws: RPCError.self) { try await client.registerWorker(registration("c")) }
            #expect(error?.code == .resourceExhausted)
            #expect(error?.message.contains("--grpc-rate-limit") == true)
            #expect(error?.metadata[stringValues: "retry-after-ms"].first(where: { _ in true }) != nil)
            #expect(error?.metadata[stringValues: "dtr-reason"].first(where: { _ in true }) == "RATE_LIMITED")
            _ = try await client.heartbeat(heartbeat("a"))
            _ = try await client.heartbeat(heartbeat("b"))
        }
        #expect(await harness.engine.workers().map(\.record.spec.id.rawValue) == ["a", "b"], "c changed nothing")
    }
}

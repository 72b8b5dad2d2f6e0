import Coordinator
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// What a route's unexpected failure tells the client: that it happened, and where to look, not its internals.
@Suite("HTTP errors")
struct JSONErrorMiddlewareTests {
    private struct Internal: Error, CustomStringConvertible {
        var description: String { "SQLITE_CORRUPT at /var/lib/dtr/coordinator.sqlite (struct Internal)" }
    }

    @Test("an unexpected error answers 500 with a reference, never the error's text")
    func unexpectedErrorsHideTheirDetails() async throws {
        let router = Router()
        router.add(middleware: JSONErrorMiddleware())
        router.get("/boom") { _, _ -> String in throw Internal() }
        try await Application(router: router).test(.router) { client in
            try await client.execute(uri: "/boom", method: .get) { response in
                #expect(response.status == .internalServerError)
                let error = try #require(try json(response.body)["error"] as? [String: Any])
                #expect(error["code"] as? String == "internal")
                let message = try #require(error["message"] as? String)
                #expect(
                    message.range(
                        of: #"^internal error \(reference [0-9a-f]+ in the coordinator's log\)"#,
                        options: .regularExpression) != nil, "\(message)")
                #expect(!message.contains("SQLITE") && !message.contains("/var/lib") && !message.contains("Internal"))
            }
        }
    }
}

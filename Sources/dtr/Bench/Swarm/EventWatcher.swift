import AsyncHTTPClient
import Foundation
import NIOCore
import Synchronization

/// Follows a coordinator's `GET /api/events` and notes when each worker's `died` event arrived.
final class EventWatcher: Sendable {
    private let died = Mutex<[String: ContinuousClock.Instant]>([:])
    private let connected = Mutex(false)
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    /// Starts following `baseURL`'s events (with `DTR_ADMIN_TOKEN`, when set, for the ticket).
    init(baseURL: String) {
        let started = Task { [self] in await follow(baseURL) }
        task.withLock { $0 = started }
    }

    private func follow(_ baseURL: String) async {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            var url = baseURL + "/api/events"
            if let token = ProcessInfo.processInfo.environment["DTR_ADMIN_TOKEN"] {
                var ticket = HTTPClientRequest(url: baseURL + "/api/events/ticket")
                ticket.method = .POST
                ticket.headers.add(name: "Authorization", value: "Bearer \(token)")
                let answer = try await client.execute(ticket, timeout: .seconds(10))
                let body = try await answer.body.collect(upTo: 1 << 16)
                let json = try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any]
                url += "?ticket=\(json?["ticket"] as? String ?? "")"
            }
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .hours(24))
            connected.withLock { $0 = true }
            var pending = ""
            var event = ""
            for try await chunk in response.body {
                pending += String(buffer: chunk)
                while let newline = pending.firstIndex(of: "\n") {
                    let line = String(pending[..<newline])
                    pending = String(pending[pending.index(after: newline)...])
                    if line.hasPrefix("event: ") {
                        event = String(line.dropFirst(7))
                    } else if line.hasPrefix("data: "), event == "worker",
                        let data = line.dropFirst(6).data(using: .utf8),
                        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                        object["change"] as? String == "died",
                        let worker = (object["worker"] as? [String: Any])?["worker_id"] as? String
                    {
                        let now = ContinuousClock.now
                        died.withLock { if $0[worker] == nil { $0[worker] = now } }
                    }
                }
            }
        } catch {
            // The stream ends when the coordinator stops.
        }
        try? await client.shutdown()
    }

    /// Whether the stream is open.
    var isConnected: Bool { connected.withLock { $0 } }

    /// When each worker's `died` event arrived.
    var deaths: [String: ContinuousClock.Instant] { died.withLock { $0 } }

    /// Stops following.
    func stop() {
        task.withLock { $0 }?.cancel()
    }
}

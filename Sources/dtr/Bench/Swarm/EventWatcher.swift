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

    /// Follows the stream until stopped, reconnecting with `Last-Event-ID` (the coordinator replays what it still
    /// buffers) if the coordinator drops it: a watcher that fell behind thousands of workers' events is disconnected
    /// as a slow client.
    private func follow(_ baseURL: String) async {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var lastID: String?
        while !Task.isCancelled {
            do {
                try await followOnce(baseURL, client: client, lastID: &lastID)
            } catch {
                // The stream ends when the coordinator stops (or dropped this client): try again shortly.
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        try? await client.shutdown()
    }

    private func followOnce(_ baseURL: String, client: HTTPClient, lastID: inout String?) async throws {
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
        var request = HTTPClientRequest(url: url)
        if let lastID { request.headers.add(name: "Last-Event-ID", value: lastID) }
        let response = try await client.execute(request, timeout: .hours(24))
        connected.withLock { $0 = true }
        var pending = ""
        var event = ""
        for try await chunk in response.body {
            // Whole lines only, each looked at once (thousands of workers send thousands of events a second).
            pending += String(buffer: chunk)
            var lines = pending.split(separator: "\n", omittingEmptySubsequences: false)
            pending = String(lines.removeLast())
            for line in lines {
                if line.hasPrefix("id: ") {
                    lastID = String(line.dropFirst(4))
                } else if line.hasPrefix("event: ") {
                    event = String(line.dropFirst(7))
                } else if event == "worker", line.hasPrefix("data: "), line.contains("\"died\""),
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

import Coordinator
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Synchronization
import Testing

/// Collects the lines a handler writes.
final class LineSink: Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }
    func write(_ line: String) { lines.withLock { $0.append(line) } }
}

private func logger(_ buffer: LogBuffer, _ sink: LineSink, format: LogFormat = .text, level: Logger.Level = .info)
    -> Logger
{
    Logger(label: "dtr") { label in
        CoordinatorLogHandler(label: label, level: level, format: format, buffer: buffer, sink: sink.write)
    }
}

/// A log line's time: ISO 8601 with milliseconds and the zone `Z`, within a minute of now.
private func expectUTCTimestamp(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(
        text.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "\(text)", sourceLocation: sourceLocation)
    let parsed = try Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    #expect(abs(parsed.timeIntervalSinceNow) < 60, "\(text)", sourceLocation: sourceLocation)
}

@Suite("Logs: the handler, the ring buffer, GET /api/logs")
struct LogTests {
    @Test("what clients send cannot forge a line or drive a terminal: control characters are made visible")
    func forgery() throws {
        let buffer = LogBuffer()
        let text = LineSink()
        let forged = "disk full\n2026-12-02T00:00:00.000Z info dtr: checkpoint committed\u{1B}[2J\u{202E}gnp.exe\\x"
        logger(buffer, text).warning(
            "checkpoint part failed: \(forged)", metadata: ["reason": "\(forged)", "worker_id": "w\r1"])
        let line = try #require(text.all.first)
        #expect(text.all.count == 1 && line.filter { $0 == "\n" }.count == 1 && line.hasSuffix("\n"))
        #expect(!line.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x202E || $0 == "\r" })
        #expect(
            line.contains(
                #"disk full\n2026-12-02T00:00:00.000Z info dtr: checkpoint committed\u{1B}[2J\u{202E}gnp.exe\\x"#))
        #expect(line.hasSuffix(#"worker_id=w\r1"# + "\n"))
        // The buffer (/api/logs, JSON) keeps the text as it was: JSON escapes it on the way out.
        #expect(
            buffer.query(minimumLevel: .trace, since: nil, worker: nil, limit: 1).first?.metadata["reason"] == forged)
        // Text without anything to escape is written as is.
        #expect(
            CoordinatorLogHandler.escaped("worker joined: rank 3 of 4 (épocas)")
                == "worker joined: rank 3 of 4 (épocas)")
    }

    @Test("text and JSON lines carry the metadata; entries below the level are neither written nor kept")
    func formats() throws {
        let buffer = LogBuffer()
        let text = LineSink()
        logger(buffer, text).info("worker joined", metadata: ["worker_id": "w1", "task_id": "default"])
        logger(buffer, text).debug("not shown")
        let line = try #require(text.all.first)
        #expect(text.all.count == 1 && line.hasSuffix(" info dtr: worker joined task_id=default worker_id=w1\n"))
        try expectUTCTimestamp(String(line.prefix { $0 != " " }))

        let json = LineSink()
        logger(buffer, json, format: .json).warning("disk slow", metadata: ["path": "/var/lib/dtr \"x\""])
        let written = try #require(json.all.first)
        let decoded = try JSONSerialization.jsonObject(with: Data(written.utf8))
        let object = try #require(decoded as? [String: String])
        #expect(object["level"] == "warning" && object["message"] == "disk slow" && object["label"] == "dtr")
        #expect(object["path"] == "/var/lib/dtr \"x\"")
        try expectUTCTimestamp(try #require(object["timestamp"]))
        #expect(buffer.total == 2)
    }

    @Test("the buffer keeps the newest entries and filters by level, time and worker")
    func buffer() {
        let buffer = LogBuffer(capacity: 3)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        for index in 0..<5 {
            buffer.append(
                timestamp: start + Double(index), level: index % 2 == 0 ? .info : .error, label: "dtr",
                message: "m\(index)", metadata: ["worker_id": "w\(index % 2)"])
        }
        #expect(buffer.total == 5)
        #expect(
            buffer.query(minimumLevel: .trace, since: nil, worker: nil, limit: 10).map(\.message) == ["m2", "m3", "m4"])
        #expect(buffer.query(minimumLevel: .error, since: nil, worker: nil, limit: 10).map(\.message) == ["m3"])
        #expect(
            buffer.query(minimumLevel: .trace, since: start + 2, worker: nil, limit: 10).map(\.message) == ["m3", "m4"])
        #expect(buffer.query(minimumLevel: .trace, since: nil, worker: "w0", limit: 10).map(\.message) == ["m2", "m4"])
        #expect(buffer.query(minimumLevel: .trace, since: nil, worker: nil, limit: 1).map(\.sequence) == [5])
    }

    @Test("a page after a sequence number holds only newer entries, with the total of the same instant")
    func pageAfterSequence() {
        let buffer = LogBuffer(capacity: 4)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        func log(_ index: Int) {
            buffer.append(
                timestamp: start, level: index % 2 == 0 ? .info : .error, label: "dtr", message: "m\(index)",
                metadata: [:])
        }
        (1...6).forEach(log)  // sequences 1-6; the ring keeps 3-6
        let all = buffer.page(minimumLevel: .trace, since: nil, afterSequence: 4, worker: nil, limit: 10)
        #expect(all.entries.map(\.sequence) == [5, 6] && all.total == 6)
        let errors = buffer.page(minimumLevel: .error, since: nil, afterSequence: 2, worker: nil, limit: 10)
        #expect(errors.entries.map(\.message) == ["m3", "m5"])
        #expect(buffer.page(minimumLevel: .trace, since: nil, afterSequence: 6, worker: nil, limit: 10).entries.isEmpty)
        // Entries logged in the same millisecond as the last one seen (where `since` would lose them) still come.
        log(7)
        let next = buffer.page(minimumLevel: .trace, since: nil, afterSequence: all.total, worker: nil, limit: 10)
        #expect(next.entries.map(\.message) == ["m7"] && next.total == 7)
        // The newest `limit` when more arrived.
        #expect(
            buffer.page(minimumLevel: .trace, since: nil, afterSequence: 0, worker: nil, limit: 2).entries.map(
                \.sequence) == [6, 7])
    }

    @Test("GET /api/logs serves the buffer; bad queries are 400s")
    func route() async throws {
        let harness = try Harness()
        let buffer = LogBuffer()
        let sink = LineSink()
        logger(buffer, sink).info("worker joined", metadata: ["worker_id": "w1"])
        logger(buffer, sink).error("checkpoint aborted", metadata: ["worker_id": "w2"])
        let app = Application(
            router: buildRouter(engine: harness.engine, listeners: Listeners(host: "127.0.0.1"), logs: buffer))
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/logs?level=warning", method: .get) { response in
                let body = try json(response.body)
                let logs = try #require(body["logs"] as? [[String: Any]])
                #expect(logs.map { $0["message"] as? String } == ["checkpoint aborted"])
                #expect((logs.first?["metadata"] as? [String: String])?["worker_id"] == "w2")
                #expect(body["total"] as? Int == 2 && body["capacity"] as? Int == 10_000)
            }
            try await client.execute(uri: "/api/logs?worker=w1&since=0&limit=5", method: .get) { response in
                let logs = try #require(try json(response.body)["logs"] as? [[String: Any]])
                #expect(logs.map { $0["level"] as? String } == ["info"])
            }
            try await client.execute(uri: "/api/logs?after_sequence=1", method: .get) { response in
                let body = try json(response.body)
                let logs = try #require(body["logs"] as? [[String: Any]])
                #expect(logs.map { $0["sequence"] as? Int } == [2] && body["total"] as? Int == 2)
            }
            for (query, message) in [
                ("level=loud", "level must be one of trace"), ("since=yesterday", "since must be an ISO 8601 time"),
                ("after_sequence=-1", "after_sequence must be a whole number"),
                ("limit=0", "limit must be between 1 and 10000"), ("worker=a%20b", "worker must be 1-128 printable"),
            ] {
                try await client.execute(uri: "/api/logs?\(query)", method: .get) { response in
                    #expect(response.status == .badRequest)
                    let error = try #require(try json(response.body)["error"] as? [String: Any])
                    #expect((error["message"] as? String)?.hasPrefix(message) == true, "\(error)")
                }
            }
        }
    }
}

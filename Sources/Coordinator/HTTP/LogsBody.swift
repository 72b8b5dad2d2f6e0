import Foundation
import Hummingbird
import Logging
import RuntimeCore

/// The query of `GET /api/logs`: `level` (minimum, default `trace`), `since` (ISO 8601 or Unix milliseconds,
/// exclusive), `after_sequence` (a sequence number, exclusive: what `dtr logs -f` follows by), `limit` (1-10000,
/// default 100: the newest that match), `worker` (a worker id).
struct LogsQuery {
    var level: Logger.Level = .trace
    var since: Date?
    var afterSequence: UInt64?
    var limit = 100
    var worker: String?

    init(_ parameters: Parameters) throws(CoreError) {
        if let raw = parameters.get("level") {
            guard let level = Logger.Level(rawValue: raw.lowercased()) else {
                throw CoreError.invalid(
                    "level", "must be one of trace, debug, info, notice, warning, error, critical",
                    got: Validation.quoted(raw))
            }
            self.level = level
        }
        if let raw = parameters.get("since") {
            if let millis = Int64(raw) {
                since = Date(timeIntervalSince1970: Double(millis) / 1000)
            } else if let date = try? Date(raw, strategy: .iso8601) {
                since = date
            } else {
                throw CoreError.invalid(
                    "since", "must be an ISO 8601 time (2026-11-29T07:00:00Z) or Unix milliseconds",
                    got: Validation.quoted(raw))
            }
        }
        if let raw = parameters.get("after_sequence") {
            guard let sequence = UInt64(raw) else {
                throw CoreError.invalid(
                    "after_sequence", "must be a whole number of at least 0 (a log entry's sequence)",
                    got: Validation.quoted(raw))
            }
            afterSequence = sequence
        }
        if let raw = parameters.get("limit") {
            guard let limit = Int(raw), (1...10_000).contains(limit) else {
                throw CoreError.invalid("limit", "must be between 1 and 10000", got: Validation.quoted(raw))
            }
            self.limit = limit
        }
        if let raw = parameters.get("worker") { worker = try WorkerID(raw, field: "worker").rawValue }
    }
}

/// `GET /api/logs`.
struct LogsBody: ResponseEncodable {
    struct Entry: Encodable {
        var sequence: UInt64
        var timestamp: Date
        var level: String
        var label: String
        var message: String
        var metadata: [String: String]

        init(_ entry: LogEntry) {
            sequence = entry.sequence
            timestamp = entry.timestamp
            level = entry.level.rawValue
            label = entry.label
            message = entry.message
            metadata = entry.metadata
        }
    }

    var logs: [Entry]
    /// Entries logged since start-up; the buffer keeps the newest `capacity`.
    var total: UInt64
    var capacity: Int

    init(entries: [LogEntry], total: UInt64, capacity: Int) {
        logs = entries.map(Entry.init)
        self.total = total
        self.capacity = capacity
    }
}

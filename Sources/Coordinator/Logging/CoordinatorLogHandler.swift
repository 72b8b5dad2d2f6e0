import Foundation
public import Logging

/// How log lines are written to standard error.
public enum LogFormat: String, Sendable, CaseIterable {
    /// `2026-11-29T07:00:00.123Z info dtr: worker joined worker_id=w1 task_id=default`
    case text
    /// One JSON object per line: `{"timestamp":...,"level":"info","label":"dtr","message":...,"worker_id":"w1"}`.
    case json
}

/// The coordinator's log handler: writes each entry as a text or JSON line (to standard error by default) and keeps
/// it in a ``LogBuffer`` for `/api/logs`.
public struct CoordinatorLogHandler: LogHandler {
    /// Where lines go (standard error in `dtr serve`).
    public typealias Sink = @Sendable (String) -> Void

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    private let label: String
    private let format: LogFormat
    private let buffer: LogBuffer
    private let sink: Sink

    /// Creates a handler for `label`.
    public init(label: String, level: Logger.Level, format: LogFormat, buffer: LogBuffer, sink: @escaping Sink) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.buffer = buffer
        self.sink = sink
    }

    /// A sink that writes whole lines to standard error (one `write` per line, so lines never interleave).
    public static let standardError: Sink = { line in
        FileHandle.standardError.write(Data(line.utf8))
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let rendered = merged.mapValues { "\($0)" }
        let now = Date()
        let message = "\(event.message)"
        buffer.append(timestamp: now, level: event.level, label: label, message: message, metadata: rendered)
        sink(Self.line(now, event.level, label, message, rendered, format: format))
    }

    /// ISO 8601 in UTC with milliseconds and the zone (`2026-11-29T07:00:00.123Z`): a line read on another machine, or
    /// next to another program's logs, says which instant it means.
    private static let timestampStyle = Date.ISO8601FormatStyle(includingFractionalSeconds: true, timeZone: .gmt)

    /// One formatted line, newline included.
    static func line(
        _ timestamp: Date, _ level: Logger.Level, _ label: String, _ message: String, _ metadata: [String: String],
        format: LogFormat
    ) -> String {
        let time = timestamp.formatted(timestampStyle)
        switch format {
        case .text:
            let fields = metadata.keys.sorted().map { key in
                "\(escaped(key))=\(quotedIfNeeded(escaped(metadata[key] ?? "")))"
            }
            return ([time, level.rawValue, "\(escaped(label)):", escaped(message)] + fields).joined(separator: " ")
                + "\n"
        case .json:
            var object: [String: String] = metadata
            object["timestamp"] = time
            object["level"] = level.rawValue
            object["label"] = label
            object["message"] = message
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let data = (try? encoder.encode(object)) ?? Data(#"{"message":"unencodable log entry"}"#.utf8)
            return String(decoding: data, as: UTF8.self) + "\n"
        }
    }

    /// Text with every character that could forge or hide log lines made visible: control characters (newlines,
    /// escape sequences that drive a terminal), line and paragraph separators and bidirectional overrides become
    /// `\n`, `\t`, `\r` or `\u{XX}`; a backslash becomes `\\`, so an escape in the output always means one in the
    /// input. Clients choose much of what is logged (reasons, failures, names), so nothing they send reaches a log
    /// line raw.
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where needsEscape(scalar): out += "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .lineSeparator, .paragraphSeparator: return true
        default:
            return scalar == "\\" || (0x202A...0x202E).contains(scalar.value)
                || (0x2066...0x2069).contains(scalar.value)
        }
    }

    private static func quotedIfNeeded(_ value: String) -> String {
        value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" })
            ? "\"\(value.replacingOccurrences(of: "\"", with: "\\\""))\"" : value
    }
}

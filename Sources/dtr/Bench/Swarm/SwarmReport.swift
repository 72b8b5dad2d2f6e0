import Foundation

/// What a swarm scenario reports: a Markdown table for people (bench/RESULTS.md) and one JSON line for scripts.
struct SwarmReport: Sendable {
    /// The scenario.
    var scenario: String
    /// The command line that produced it.
    var command: String
    /// Rows of `| measurement | value | baseline (same run) | ratio or goal |`.
    var rows: [[String]] = []
    /// Notes printed under the table.
    var notes: [String] = []
    /// Every figure, for the JSON line.
    var figures: [String: any Sendable] = [:]
    /// Whether the scenario ran correctly: no errors, no false deaths, every worker ranked (what CI asserts).
    var correct = true
    /// Why not, when not.
    var problems: [String] = []

    /// Notes a correctness problem.
    mutating func problem(_ text: String) {
        correct = false
        problems.append(text)
    }

    /// The table, notes and the JSON line.
    func render(loadBefore: [Double], loadAfter: [Double], coordinator: String) -> String {
        let date = ISO8601DateFormatter().string(from: Date())
        var lines = [
            "`\(command)` — \(date); \(ProcessStats.machine); coordinator: \(coordinator); load average "
                + "\(Self.load(loadBefore)) before, \(Self.load(loadAfter)) after",
            "",
            "| measurement | value | baseline (same run) | ratio / goal |",
            "| --- | --- | --- | --- |",
        ]
        lines += rows.map { "| " + $0.joined(separator: " | ") + " |" }
        if !notes.isEmpty { lines += [""] + notes }
        if !problems.isEmpty { lines += ["", "**Not correct:** " + problems.joined(separator: "; ")] }
        var json = figures
        json["bench"] = "swarm"
        json["scenario"] = scenario
        json["date"] = date
        json["machine"] = ProcessStats.machine
        json["coordinator"] = coordinator
        json["load_average_before"] = loadBefore
        json["load_average_after"] = loadAfter
        json["correct"] = correct
        json["problems"] = problems
        lines += ["", Self.jsonLine(json)]
        return lines.joined(separator: "\n")
    }

    private static func load(_ values: [Double]) -> String {
        values.map { String(format: "%.2f", $0) }.joined(separator: "/")
    }

    /// One line of JSON (keys sorted).
    static func jsonLine(_ object: [String: any Sendable]) -> String {
        let cleaned = object.mapValues(jsonValue)
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: cleaned, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    private static func jsonValue(_ value: any Sendable) -> Any {
        switch value {
        case let value as Double: return value.isFinite ? value : NSNull()
        case let value as [String: any Sendable]: return value.mapValues(jsonValue)
        case let value as [any Sendable]: return value.map(jsonValue)
        case let value as [Double]: return value.map { $0.isFinite ? $0 : 0 }
        case let value as [String: Int]: return value
        default: return value
        }
    }
}

/// Formatting for the tables.
enum Figure {
    static func ms(_ value: Double) -> String { String(format: "%.2f ms", value) }
    static func seconds(_ value: Double) -> String { String(format: "%.3f s", value) }
    static func microseconds(_ seconds: Double) -> String { String(format: "%.1f µs", seconds * 1e6) }
    static func ratio(_ value: Double) -> String { String(format: "%.2f×", value) }
    static func rate(_ value: Double) -> String { String(format: "%.0f/s", value) }
    static func count(_ value: Int) -> String {
        let digits = String(value)
        var out = ""
        for (index, digit) in digits.reversed().enumerated() {
            if index > 0, index % 3 == 0 { out.append(",") }
            out.append(digit)
        }
        return String(out.reversed())
    }
    static func bytes(_ value: Double) -> String {
        if abs(value) >= Double(1 << 20) { return String(format: "%.1f MiB", value / Double(1 << 20)) }
        if abs(value) >= 1024 { return String(format: "%.2f KiB", value / 1024) }
        return String(format: "%.0f B", value)
    }
    static func met(_ ok: Bool) -> String { ok ? "✓" : "✗" }
}

import ArgumentParser
import Foundation
import UnixSignals

/// `dtr logs`: the coordinator's recent log entries, as `dtr serve` writes them; `-f` follows new ones, like
/// `kubectl logs -f`.
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Show the coordinator's recent log entries; -f keeps printing new ones until Ctrl-C.",
        discussion: """
            Reads GET /api/logs (the coordinator keeps its last 10,000 entries in memory). Lines look like those of \
            `dtr serve`: TIME LEVEL LABEL: MESSAGE key=value... With -f, polls for entries newer than the last one \
            seen (after_sequence) every 0.5s, and exits 0 on Ctrl-C; if the API goes away it says so and keeps \
            trying, and after a restart of the coordinator it follows the new log from its start. With --json, prints GET /api/logs' document; with -f --json, one JSON object per entry and line.
            """)

    @OptionGroup var options: APIOptions

    @Flag(name: [.short, .long], help: "Keep printing new entries until Ctrl-C.")
    var follow = false

    @Option(help: "The minimum level: trace, debug, info, notice, warning, error or critical (default: trace).")
    var level: String?

    @Option(help: "Only entries about this worker id.")
    var worker: String?

    @Option(help: "At most this many entries, the newest that match, 1-10000 (default: 100).")
    var limit: Int?

    /// How often `-f` asks for new entries.
    static let pollInterval: Duration = .milliseconds(500)

    func run() async throws {
        let settings = try options.settings()
        let style = Style.forStandardOutput()
        let firstQuery = query(limit: limit.map(String.init))
        guard follow else {
            let response = try await APIClient.with(settings) { client in
                try await client.get("/api/logs", query: firstQuery)
            }
            return Terminal.write(options.json ? response.text : Self.lines(response.json["logs"].array, style: style))
        }
        // Trapped before the first request, so that Ctrl-C always ends a follower with status 0.
        let signals = await UnixSignalsSequence(trapping: .sigint)
        try await APIClient.with(settings) { client in
            try await Self.untilInterrupted(by: signals) {
                var watch = RestartWatch()
                _ = try await Self.observeUptime(client, &watch)
                let first = try await client.get("/api/logs", query: firstQuery).json
                write(first["logs"].array, style: style)
                try await follow(client, after: first["total"].int.map(UInt64.init) ?? 0, watch: watch, style: style)
            }
        }
    }

    // MARK: Following

    /// Polls for entries after sequence `after` until cancelled. Transient failures (the coordinator restarting or
    /// shutting down, a rate limit) are reported once and retried; other errors the API answers end the command.
    private func follow(_ client: APIClient, after start: UInt64, watch: RestartWatch, style: Style) async throws {
        var watch = watch
        var after = start
        var lost = false
        while true {
            try await Task.sleep(for: Self.pollInterval)
            let page: JSON
            do {
                // The uptime first: a restart between the two requests is then seen at the next poll, and the page
                // of entries (from the old coordinator) is right.
                let restarted = try await Self.observeUptime(client, &watch)
                if lost { Terminal.writeError("dtr logs: the API at \(client.settings.baseURL) answers again\n") }
                lost = false
                if restarted {
                    Terminal.writeError("dtr logs: the coordinator restarted; following its new log from its start\n")
                    after = 0
                }
                page = try await client.get(
                    "/api/logs", query: query(limit: "10000") + [("after_sequence", String(after))]
                ).json
            } catch let failure as APIFailure where failure.isTransient {
                if !lost { Terminal.writeError("dtr logs: \(failure.message); retrying until Ctrl-C\n") }
                lost = true
                continue
            }
            let total = page["total"].int.map(UInt64.init) ?? after
            if total < after {
                // Fewer entries than already seen: restarted without a sign the uptime gave. Start again.
                Terminal.writeError("dtr logs: the coordinator restarted; following its new log from its start\n")
                after = 0
                continue
            }
            // A coordinator without after_sequence would send older entries again: skip them.
            write(page["logs"].array.filter { ($0["sequence"].int.map(UInt64.init) ?? .max) > after }, style: style)
            after = total
        }
    }

    /// Asks the coordinator's uptime and tells `watch`; returns whether the coordinator restarted since last asked.
    private static func observeUptime(_ client: APIClient, _ watch: inout RestartWatch) async throws -> Bool {
        let sent = ContinuousClock.now
        let uptime = try await client.get("/api/health").json["uptime_seconds"].double
        return watch.restarted(uptime: uptime, sent: sent, received: .now)
    }

    /// Runs `body` until it ends or one of `signals` arrives; a signal cancels it and returns normally (exit
    /// status 0).
    private static func untilInterrupted(
        by signals: UnixSignalsSequence, _ body: @escaping @Sendable () async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await body() }
            group.addTask {
                for await _ in signals { return }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    // MARK: Output

    private func query(limit: String?) -> [(name: String, value: String)] {
        var query: [(name: String, value: String)] = []
        if let level { query.append(("level", level)) }
        if let worker { query.append(("worker", worker)) }
        if let limit { query.append(("limit", limit)) }
        return query
    }

    /// Writes entries: as lines of text, or with --json as one JSON object per line.
    private func write(_ entries: [JSON], style: Style) {
        guard !entries.isEmpty else { return }
        Terminal.write(
            options.json ? entries.map { $0.compactText + "\n" }.joined() : Self.lines(entries, style: style))
    }

    /// Entries (elements of `GET /api/logs`' `logs`) as `dtr serve` writes them:
    /// `2026-11-29T08:00:03Z info dtr: worker joined task_id=mnist worker_id=w1`.
    static func lines(_ entries: [JSON], style: Style) -> String {
        entries.map { entry in
            let level = entry["level"].string ?? "?"
            let metadata = entry["metadata"].object
            let fields = metadata.keys.sorted().map { key in
                "\(key)=\(quotedIfNeeded(metadata[key]?.string ?? metadata[key]?.compactText ?? ""))"
            }
            let head = [
                entry["timestamp"].string ?? "?", style.paint(level, colour(of: level)),
                "\(entry["label"].string ?? "?"):", entry["message"].string ?? "",
            ]
            return (head + fields).joined(separator: " ") + "\n"
        }.joined()
    }

    private static func colour(of level: String) -> Colour? {
        switch level {
        case "trace", "debug": .dim
        case "notice": .blue
        case "warning": .yellow
        case "error", "critical": .red
        default: nil
        }
    }

    /// As the coordinator's text lines: values with spaces, quotes or `=` in quotes.
    private static func quotedIfNeeded(_ value: String) -> String {
        value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" })
            ? "\"\(value.replacingOccurrences(of: "\"", with: "\\\""))\"" : value
    }
}

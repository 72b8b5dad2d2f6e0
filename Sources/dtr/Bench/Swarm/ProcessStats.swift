import Foundation

/// CPU time and resident memory of a process, from /proc (Linux).
struct ProcessStats: Sendable {
    /// User plus system CPU time.
    var cpuSeconds: Double
    /// Resident set size.
    var residentBytes: Int
    /// Instructions executed since the process started, when it runs under callgrind (``Callgrind``).
    var instructions: Int?
    /// The callgrind profile this reading wrote: the process's costs since the reading before.
    var profile: String?

    /// The process's figures now, or nil when /proc does not have them (another system, or the process is gone).
    static func of(_ pid: Int32) -> ProcessStats? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let end = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after the command name (which may hold spaces): state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: end)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var resident = 0
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            resident = (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
        }
        return ProcessStats(cpuSeconds: (user + system) / ticks, residentBytes: resident)
    }

    /// The 1, 5 and 15 minute load averages of this machine.
    static var loadAverage: [Double] {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return [] }
        return text.split(separator: " ").prefix(3).compactMap { Double($0) }
    }

    /// The machine in a few words: CPU model and count.
    static var machine: String {
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        let model =
            (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "\(cpus) × \(model)"
    }
}

/// What one message cost a process over a measured window.
struct MessageCost: Sendable {
    /// CPU time.
    var cpu: Duration
    /// Instructions, when the process runs under callgrind.
    var instructions: Double?

    /// The cost of each of the `messages` handled between the readings `before` and `after` (nil when either
    /// reading is missing).
    init?(from before: ProcessStats?, to after: ProcessStats?, messages: Int) {
        guard let before, let after else { return nil }
        let count = Double(max(messages, 1))
        cpu = .seconds((after.cpuSeconds - before.cpuSeconds) / count)
        if let start = before.instructions, let end = after.instructions {
            instructions = Double(end - start) / count
        }
    }

    private init(cpu: Duration, instructions: Double?) {
        self.cpu = cpu
        self.instructions = instructions
    }

    /// The mean of two measurements of one kind of message (nil when either is missing).
    static func mean(_ a: MessageCost?, _ b: MessageCost?) -> MessageCost? {
        guard let a, let b else { return nil }
        let instructions = a.instructions.flatMap { a in b.instructions.map { (a + $0) / 2 } }
        return MessageCost(cpu: (a.cpu + b.cpu) / 2, instructions: instructions)
    }
}

import RuntimeCore

/// A clock tests move by hand: the pure core only ever sees the moments it hands out.
struct ManualClock {
    private(set) var now = Moment(monotonic: .seconds(1000), unixMillis: 1_800_000_000_000)

    mutating func advance(_ duration: Duration) {
        now = now.advanced(by: duration)
    }
}

func worker(_ id: String, task: String = "", port: Int = 7000) throws -> WorkerSpec {
    WorkerSpec(id: try WorkerID(id), taskID: try TaskID(task), host: "10.0.0.1", port: port, gpuCount: 1)
}

func wid(_ raw: String) throws -> WorkerID { try WorkerID(raw) }

extension Membership {
    /// The ids of a task's members in rank order, as strings.
    func ranks(_ task: TaskID = .default) -> [String] { members(of: task).map(\.rawValue) }

    /// Registers, ignoring directives.
    @discardableResult
    mutating func join(_ spec: WorkerSpec, at now: Moment) throws -> MembershipView {
        try onRegister(spec, now: now).view
    }
}

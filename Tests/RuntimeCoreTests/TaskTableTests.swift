import Testing

@testable import RuntimeCore

@Suite("Task lifecycle")
struct TaskTableTests {
    private func spec(_ id: String, worldSize: Int = 2) throws -> TaskSpec {
        try TaskSpec(id: TaskID(id), worldSize: worldSize, dataset: "digits", epochs: 3, configJSON: #"{"lr":0.1}"#)
    }

    @Test("pending, running at the first join, stopping on stop, stopped when the last worker leaves")
    func stopped() throws {
        var table = TaskTable()
        let created = try table.make(spec("job"), ms: 1)
        #expect(created.status == .pending && created.explicit && created.worldSize == 2 && created.epochs == 3)
        #expect(table.join(try TaskID("job"), ms: 2)?.status == .running)
        #expect(table.join(try TaskID("job"), ms: 3) == nil, "a second join changes nothing")
        #expect(!table.isStopping(try TaskID("job")))
        let (stopping, changed) = try table.halt(TaskID("job"), members: 2, ms: 4)
        #expect(changed && stopping.status == .stopping && stopping.reason == "stop requested")
        #expect(table.isStopping(try TaskID("job")))
        #expect(try !table.halt(TaskID("job"), members: 2, ms: 5).changed, "stopping twice is a no-op")
        #expect(table.depart(try TaskID("job"), .left, remaining: 1, ms: 6) == nil)
        let stopped = try #require(table.depart(try TaskID("job"), .died, remaining: 0, ms: 7))
        #expect(stopped.status == .stopped && stopped.endedAtMs == 7 && stopped.startedAtMs == 2)
        let job = try TaskID("job")
        #expect(!table.isStopping(job))
        #expect(table.join(job, ms: 8)?.status == .running, "started again, the job runs again")
    }

    @Test("the last worker leaving completes a task; the last one dying fails it; a restart runs it again")
    func completedAndFailed() throws {
        var table = TaskTable()
        _ = table.join(try TaskID("a"), ms: 1)
        #expect(table.record(try TaskID("a"))?.explicit == false, "a worker's task is created implicitly")
        #expect(table.depart(try TaskID("a"), .left, remaining: 0, ms: 2)?.status == .completed)
        _ = table.join(try TaskID("b"), ms: 3)
        let failed = table.depart(try TaskID("b"), .died, remaining: 0, ms: 4)
        #expect(failed?.status == .failed && failed?.reason == "the last worker died")
        let revived = table.join(try TaskID("b"), ms: 5)
        #expect(revived?.status == .running && revived?.endedAtMs == nil && revived?.startedAtMs == 3)
        let error = #expect(throws: CoreError.self) { try table.halt(TaskID("a"), members: 0, ms: 6) }
        #expect(
            error?.code == .failedPrecondition && error?.message == "task a already completed: there is nothing to stop"
        )
    }

    @Test("a task without workers stops at once; unknown tasks are not found; ids are unique")
    func edges() throws {
        var table = TaskTable()
        _ = try table.make(spec("idle"), ms: 1)
        #expect(try table.halt(TaskID("idle"), members: 0, ms: 2).record.status == .stopped)
        #expect(throws: CoreError(.notFound, "no task ghost: GET /api/tasks lists them")) {
            try table.halt(TaskID("ghost"), members: 0, ms: 3)
        }
        let rerun = try table.make(spec("idle", worldSize: 3), ms: 4)
        #expect(rerun.status == .pending && rerun.worldSize == 3 && rerun.createdAtMs == 4, "an ended task runs anew")
        #expect(rerun.endedAtMs == nil && rerun.reason == nil)
        let duplicate = #expect(throws: CoreError.self) { try table.make(spec("idle"), ms: 4) }
        #expect(duplicate?.code == .alreadyExists && duplicate?.message.contains("stop it first") == true)
        _ = table.join(try TaskID("implicit"), ms: 5)
        let adopted = try table.make(spec("implicit", worldSize: 4), ms: 6)
        #expect(adopted.explicit && adopted.status == .running && adopted.worldSize == 4 && adopted.createdAtMs == 5)
        #expect(table.all.map(\.id) == ["idle", "implicit"])
        #expect(TaskTable(restoring: table.all).all == table.all)
    }

    @Test("a stop pushes STOP to the members and the task has not ended until the last one leaves")
    func stopDirectives() throws {
        var table = TaskTable()
        let job = try TaskID("job")
        _ = table.join(job, ms: 1)
        let (stopping, directives) = try table.stop(job, members: 2, now: at(2))
        #expect(directives == [.persist(stopping), .push(job, reason: "task job is stopping")])
        #expect(stopping.status == .stopping && stopping.endedAtMs == nil, "a stopping task has not ended")
        #expect(try table.stop(job, members: 2, now: at(3)).directives.isEmpty)
        let ended = table.onMembershipChange(
            job, members: 0, cause: .left(try WorkerID("w"), failed: false), now: at(4))
        let stopped = try #require(table.record(job))
        #expect(stopped.status == .stopped && stopped.endedAtMs == 4)
        #expect(ended == [.persist(stopped), .ended(stopped)])
    }

    @Test("a restarted process leaves the lifecycle alone, even as the only member")
    func restart() throws {
        var table = TaskTable()
        let job = try TaskID("job")
        let w = try WorkerID("w")
        _ = table.join(job, ms: 1)
        #expect(table.onMembershipChange(job, members: 0, cause: .restartedOldProcessLeft(w), now: at(2)).isEmpty)
        #expect(
            table.onMembershipChange(job, members: 1, cause: .restartedNewProcessJoined(w, rank: 0), now: at(2))
                .isEmpty)
        #expect(table.record(job)?.status == .running)
    }

    @Test("a worker that failed as the last one fails the task; one that finished completes it")
    func failedLeave() throws {
        var table = TaskTable()
        let job = try TaskID("job")
        _ = table.join(job, ms: 1)
        #expect(table.depart(job, .failed, remaining: 1, ms: 2) == nil)
        let failed = table.depart(job, .failed, remaining: 0, ms: 3)
        #expect(failed?.status == .failed && failed?.reason == "the last worker failed")
        _ = table.join(job, ms: 4)
        #expect(table.depart(job, .left, remaining: 0, ms: 5)?.status == .completed)
    }

    @Test("the world size bounds admission: a task created with one, or by a worker that asked for one")
    func admission() throws {
        var table = TaskTable()
        _ = try table.make(
            try TaskSpec(
                id: TaskID("api"), worldSize: 2, minWorldSize: 1, dataset: nil, epochs: nil,
                configJSON: "{}"), ms: 1)
        let api = try TaskID("api")
        try table.admit(api, members: 1, hint: WorldSizeHint(max: 8))
        let full = #expect(throws: CoreError.self) { try table.admit(api, members: 2, hint: WorldSizeHint(max: 8)) }
        #expect(full?.code == .resourceExhausted && full?.reason == .taskFull && full?.details.worldSize == 2)
        #expect(table.record(api)?.effectiveMinWorldSize == 1)

        // A task a worker creates takes the world size the worker asked for; without one, anyone is admitted.
        let launched = try TaskID("launched")
        try table.admit(launched, members: 0, hint: WorldSizeHint(min: 2, max: 4))
        let created = table.join(launched, hint: WorldSizeHint(min: 2, max: 4), ms: 2)
        #expect(created?.worldSize == 4 && created?.effectiveMinWorldSize == 2 && created?.explicit == false)
        #expect(throws: CoreError.self) { try table.admit(launched, members: 4, hint: WorldSizeHint()) }
        try table.admit(try TaskID("free"), members: 1_000, hint: WorldSizeHint())

        // Run again after it ended, a worker-made task takes the new run's world size; an API-made one keeps its own.
        _ = table.depart(launched, .left, remaining: 0, ms: 3)
        try table.admit(launched, members: 4, hint: WorldSizeHint(max: 6))
        #expect(table.join(launched, hint: WorldSizeHint(max: 6), ms: 4)?.worldSize == 6)
        _ = try table.halt(api, members: 0, ms: 5)
        #expect(throws: CoreError.self) { try table.admit(api, members: 2, hint: WorldSizeHint(max: 8)) }
    }

    @Test(
        "bad specs name the field",
        arguments: [
            (-1, nil, nil, "world_size must be between 0 (not said) and 65536 (got -1)"),
            (2, "../x", nil, "dataset must be 1-128 characters of [A-Za-z0-9._-]"),
            (2, nil, 0, "epochs must be between 1 and 1000000 (got 0)"),
        ] as [(Int, String?, Int?, String)])
    func badSpecs(worldSize: Int, dataset: String?, epochs: Int?, message: String) throws {
        let error = #expect(throws: CoreError.self) {
            try TaskSpec(id: TaskID("x"), worldSize: worldSize, dataset: dataset, epochs: epochs, configJSON: "{}")
        }
        #expect(error?.code == .invalidArgument && error?.message.hasPrefix(message) == true, "\(error?.message ?? "")")
    }
}

/// Events at a millisecond time: the table takes ``Moment``s.
private func at(_ ms: Int64) -> Moment { Moment(monotonic: .milliseconds(ms), unixMillis: ms) }

/// The tests' vocabulary (join, depart, make, halt) on the table's contract: the record each event persisted.
extension TaskTable {
    private static let joiner = try! WorkerID("joiner")
    private static let leaver = try! WorkerID("leaver")

    private static func persisted(_ directives: [Directive]) -> TaskRecord? {
        directives.lazy.compactMap { if case .persist(let record) = $0 { record } else { nil } }.first
    }

    /// A worker joins (the first one creates the task if nobody did).
    mutating func join(_ id: TaskID, hint: WorldSizeHint = WorldSizeHint(), ms: Int64) -> TaskRecord? {
        Self.persisted(
            onMembershipChange(
                id, members: 1, cause: .joined(Self.joiner, rank: 0), hint: hint,
                now: at(ms)))
    }

    enum Departure { case left, failed, died }

    /// A member departs, leaving `remaining`.
    mutating func depart(_ id: TaskID, _ departure: Departure, remaining: Int, ms: Int64) -> TaskRecord? {
        let who = Self.leaver
        let cause: MembershipChangeCause =
            switch departure {
            case .left: .left(who, failed: false)
            case .failed: .left(who, failed: true)
            case .died: .died([who], after: .seconds(5))
            }
        return Self.persisted(onMembershipChange(id, members: remaining, cause: cause, now: at(ms)))
    }

    /// Creates a task through the API.
    mutating func make(_ spec: TaskSpec, ms: Int64) throws -> TaskRecord { try create(spec, now: at(ms)).record }

    /// Stops a task; whether it changed.
    mutating func halt(_ id: TaskID, members: Int, ms: Int64) throws -> (record: TaskRecord, changed: Bool) {
        let (record, directives) = try stop(id, members: members, now: at(ms))
        return (record, !directives.isEmpty)
    }
}

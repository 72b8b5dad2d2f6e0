import RuntimeCore
import Testing

@Suite("Task lifecycle")
struct TaskTableTests {
    private func spec(_ id: String, worldSize: Int = 2) throws -> TaskSpec {
        try TaskSpec(id: TaskID(id), worldSize: worldSize, dataset: "digits", epochs: 3, configJSON: #"{"lr":0.1}"#)
    }

    @Test("pending, running at the first join, stopping on stop, stopped when the last worker leaves")
    func stopped() throws {
        var table = TaskTable()
        let created = try table.create(spec("job"), nowMs: 1)
        #expect(created.status == .pending && created.explicit && created.worldSize == 2 && created.epochs == 3)
        #expect(table.onJoin(try TaskID("job"), nowMs: 2)?.status == .running)
        #expect(table.onJoin(try TaskID("job"), nowMs: 3) == nil, "a second join changes nothing")
        #expect(!table.isStopping(try TaskID("job")))
        let (stopping, changed) = try table.stop(TaskID("job"), members: 2, nowMs: 4)
        #expect(changed && stopping.status == .stopping && stopping.reason == "stop requested")
        #expect(table.isStopping(try TaskID("job")))
        #expect(try !table.stop(TaskID("job"), members: 2, nowMs: 5).changed, "stopping twice is a no-op")
        #expect(table.onDeparture(try TaskID("job"), .left, remaining: 1, nowMs: 6) == nil)
        let stopped = try #require(table.onDeparture(try TaskID("job"), .died, remaining: 0, nowMs: 7))
        #expect(stopped.status == .stopped && stopped.endedAtMs == 7 && stopped.startedAtMs == 2)
        let job = try TaskID("job")
        #expect(!table.isStopping(job))
        #expect(table.onJoin(job, nowMs: 8)?.status == .running, "started again, the job runs again")
    }

    @Test("the last worker leaving completes a task; the last one dying fails it; a restart runs it again")
    func completedAndFailed() throws {
        var table = TaskTable()
        _ = table.onJoin(try TaskID("a"), nowMs: 1)
        #expect(table.record(try TaskID("a"))?.explicit == false, "a worker's task is created implicitly")
        #expect(table.onDeparture(try TaskID("a"), .left, remaining: 0, nowMs: 2)?.status == .completed)
        _ = table.onJoin(try TaskID("b"), nowMs: 3)
        let failed = table.onDeparture(try TaskID("b"), .died, remaining: 0, nowMs: 4)
        #expect(failed?.status == .failed && failed?.reason == "the last worker died")
        let revived = table.onJoin(try TaskID("b"), nowMs: 5)
        #expect(revived?.status == .running && revived?.endedAtMs == nil && revived?.startedAtMs == 3)
        let error = #expect(throws: CoreError.self) { try table.stop(TaskID("a"), members: 0, nowMs: 6) }
        #expect(
            error?.code == .failedPrecondition && error?.message == "task a already completed: there is nothing to stop"
        )
    }

    @Test("a task without workers stops at once; unknown tasks are not found; ids are unique")
    func edges() throws {
        var table = TaskTable()
        _ = try table.create(spec("idle"), nowMs: 1)
        #expect(try table.stop(TaskID("idle"), members: 0, nowMs: 2).record.status == .stopped)
        #expect(throws: CoreError(.notFound, "no task ghost: GET /api/tasks lists them")) {
            try table.stop(TaskID("ghost"), members: 0, nowMs: 3)
        }
        let rerun = try table.create(spec("idle", worldSize: 3), nowMs: 4)
        #expect(rerun.status == .pending && rerun.worldSize == 3 && rerun.createdAtMs == 4, "an ended task runs anew")
        #expect(rerun.endedAtMs == nil && rerun.reason == nil)
        let duplicate = #expect(throws: CoreError.self) { try table.create(spec("idle"), nowMs: 4) }
        #expect(duplicate?.code == .alreadyExists && duplicate?.message.contains("stop it first") == true)
        _ = table.onJoin(try TaskID("implicit"), nowMs: 5)
        let adopted = try table.create(spec("implicit", worldSize: 4), nowMs: 6)
        #expect(adopted.explicit && adopted.status == .running && adopted.worldSize == 4 && adopted.createdAtMs == 5)
        #expect(table.all.map(\.id) == ["idle", "implicit"])
        #expect(TaskTable(restoring: table.all).all == table.all)
    }

    @Test("a worker that failed as the last one fails the task; one that finished completes it")
    func failedLeave() throws {
        var table = TaskTable()
        let job = try TaskID("job")
        _ = table.onJoin(job, nowMs: 1)
        #expect(table.onDeparture(job, .failed, remaining: 1, nowMs: 2) == nil)
        let failed = table.onDeparture(job, .failed, remaining: 0, nowMs: 3)
        #expect(failed?.status == .failed && failed?.reason == "the last worker failed")
        _ = table.onJoin(job, nowMs: 4)
        #expect(table.onDeparture(job, .left, remaining: 0, nowMs: 5)?.status == .completed)
    }

    @Test("the world size bounds admission: a task created with one, or by a worker that asked for one")
    func admission() throws {
        var table = TaskTable()
        _ = try table.create(
            try TaskSpec(
                id: TaskID("api"), worldSize: 2, minWorldSize: 1, dataset: nil, epochs: nil,
                configJSON: "{}"), nowMs: 1)
        let api = try TaskID("api")
        try table.admit(api, members: 1, hint: WorldSizeHint(max: 8))
        let full = #expect(throws: ReasonedError.self) { try table.admit(api, members: 2, hint: WorldSizeHint(max: 8)) }
        #expect(full?.code == .resourceExhausted && full?.reason == "TASK_FULL")
        #expect(table.record(api)?.effectiveMinWorldSize == 1)

        // A task a worker creates takes the world size the worker asked for; without one, anyone is admitted.
        let launched = try TaskID("launched")
        try table.admit(launched, members: 0, hint: WorldSizeHint(min: 2, max: 4))
        let created = table.onJoin(launched, hint: WorldSizeHint(min: 2, max: 4), nowMs: 2)
        #expect(created?.worldSize == 4 && created?.effectiveMinWorldSize == 2 && created?.explicit == false)
        #expect(throws: ReasonedError.self) { try table.admit(launched, members: 4, hint: WorldSizeHint()) }
        try table.admit(try TaskID("free"), members: 1_000, hint: WorldSizeHint())

        // Run again after it ended, a worker-made task takes the new run's world size; an API-made one keeps its own.
        _ = table.onDeparture(launched, .left, remaining: 0, nowMs: 3)
        try table.admit(launched, members: 4, hint: WorldSizeHint(max: 6))
        #expect(table.onJoin(launched, hint: WorldSizeHint(max: 6), nowMs: 4)?.worldSize == 6)
        _ = try table.stop(api, members: 0, nowMs: 5)
        #expect(throws: ReasonedError.self) { try table.admit(api, members: 2, hint: WorldSizeHint(max: 8)) }
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

public import RuntimeCore

/// Tasks (training jobs): created and stopped through the HTTP API, started and ended by their workers.
extension CoordinatorEngine {
    /// Creates a task; returns once it is durable.
    public func createTask(_ spec: TaskSpec) async throws -> TaskRecord {
        let (record, directives) = try tasks.create(spec, now: now())
        carryOut(directives)
        try await settle(spec.id)
        logger.info("task created", metadata: ["task_id": "\(spec.id)", "world_size": "\(spec.worldSize)"])
        return record
    }

    /// Asks a task to stop: its workers are told STOP at once on their session streams (and in every heartbeat reply
    /// from now on). Returns once the stop is durable.
    public func stopTask(_ id: TaskID) async throws -> TaskRecord {
        let members = membership.members(of: id).count
        let (record, directives) = try tasks.stop(id, members: members, now: now())
        guard !directives.isEmpty else { return record }
        carryOut(directives)
        try await settle(id)
        logger.info("task stopping", metadata: ["task_id": "\(id)", "workers": "\(members)"])
        return record
    }

    /// Every task, oldest first, with its current members.
    public func taskList() -> [(record: TaskRecord, members: Int, membershipEpoch: UInt64)] {
        tasks.all.map { ($0, membership.members(of: $0.taskID).count, membership.epoch(of: $0.taskID)) }
    }

    /// A task's record, if the task exists (its settings, for a registration's reply).
    public func taskRecord(_ id: TaskID) -> TaskRecord? { tasks.record(id) }

    /// One task.
    public func task(_ id: TaskID) throws(CoreError) -> (record: TaskRecord, members: Int, membershipEpoch: UInt64) {
        guard let record = tasks.record(id) else {
            throw CoreError(.notFound, "no task \(id): GET /api/tasks lists them")
        }
        return (record, membership.members(of: id).count, membership.epoch(of: id))
    }
}

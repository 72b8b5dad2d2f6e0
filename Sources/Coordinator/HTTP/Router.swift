public import Hummingbird
import RuntimeCore

/// The HTTP API's routes (see docs/API.md), callable from tests with Hummingbird's `app.test(.router)`.
public func buildRouter(engine: CoordinatorEngine, listeners: Listeners) -> Router<APIRequestContext> {
    let router = Router(context: APIRequestContext.self)
    router.add(middleware: JSONErrorMiddleware())

    router.get("/api/health") { _, _ -> HealthBody in
        HealthBody(uptimeSeconds: engine.uptime.seconds)
    }

    router.get("/api/status") { _, _ -> StatusBody in
        let status = await engine.status()
        let config = engine.membershipConfig
        let ports = listeners.current
        let count = { (health: WorkerHealth) in status.health[health] ?? 0 }
        return StatusBody(
            host: listeners.host, grpcPort: ports.grpc, httpPort: ports.http, uptimeSeconds: status.uptime.seconds,
            heartbeat: .init(
                intervalMs: config.heartbeatInterval.milliseconds, suspectAfterMs: config.suspectAfter.milliseconds,
                deadAfterMs: config.deadAfter.milliseconds),
            workers: .init(
                total: status.health.values.reduce(0, +), healthy: count(.healthy), suspect: count(.suspect),
                dead: count(.dead), left: count(.left)),
            sessions: status.sessions,
            tasks: status.tasks.map {
                .init(taskID: $0.taskID.rawValue, membershipEpoch: $0.epoch, worldSize: $0.worldSize)
            })
    }

    router.get("/api/workers") { request, _ -> WorkersBody in
        let task = try request.uri.queryParameters.get("task").map { raw throws(CoreError) in
            try TaskID(raw, field: "task")
        }
        let workers = await engine.workers().filter { task == nil || $0.record.spec.taskID == task }
        return WorkersBody(workers: workers.map(WorkerBody.init))
    }

    router.get("/api/datasets") { _, _ -> DatasetsBody in
        DatasetsBody(datasets: await engine.datasets().map { DatasetBody(record: $0.record, ledgers: $0.ledgers) })
    }

    router.get("/api/barriers") { _, _ -> BarriersBody in
        BarriersBody(await engine.barrierStatus())
    }

    router.get("/api/checkpoints") { _, _ -> CheckpointsBody in
        CheckpointsBody(records: await engine.checkpointRecords(), location: engine.checkpointLocation)
    }

    return router
}

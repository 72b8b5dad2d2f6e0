import DataShard
public import Hummingbird
import RuntimeCore

/// The HTTP API's routes (see docs/API.md), callable from tests with Hummingbird's `app.test(.router)`.
public func buildRouter(
    engine: CoordinatorEngine, listeners: Listeners, logs: LogBuffer = LogBuffer(), adminToken: BearerToken? = nil,
    cors: CORSPolicy = CORSPolicy(origins: []), rateLimits: ClientRateLimits? = nil,
    maxBodyBytes: Int = BodyLimitMiddleware.defaultMaxBytes
) -> Router<APIRequestContext> {
    let router = Router(context: APIRequestContext.self)
    // Outermost, so that error responses carry the CORS headers too.
    if !cors.origins.isEmpty { router.add(middleware: CORSMiddleware(policy: cors)) }
    router.add(middleware: JSONErrorMiddleware())
    // Before authentication, so that guessing tokens is rate-limited too.
    if let rateLimits { router.add(middleware: HTTPRateLimitMiddleware(limits: rateLimits, metrics: engine.metrics)) }
    if let adminToken { router.add(middleware: AdminAuthMiddleware(token: adminToken)) }
    // Every route: an over-limit body is refused with 413 before a route acts on it.
    router.add(middleware: BodyLimitMiddleware(maxBytes: maxBodyBytes))

    router.get("/api/health") { _, _ -> HealthBody in
        HealthBody(uptimeSeconds: engine.uptime.seconds)
    }

    router.get("/api/status") { _, _ -> StatusBody in
        await statusBody(engine: engine, listeners: listeners)
    }

    router.get("/api/workers") { request, _ -> WorkersBody in
        let task = try request.uri.queryParameters.get("task").map { raw throws(CoreError) in
            try TaskID(raw, field: "task")
        }
        let workers = await engine.workerStatuses().filter { task == nil || $0.snapshot.record.spec.taskID == task }
        return WorkersBody(workers: workers.map(WorkerBody.init))
    }

    router.get("/api/datasets") { _, _ -> DatasetsBody in
        DatasetsBody(
            datasets: try await engine.loadedDatasets().map { DatasetBody(record: $0.record, ledgers: $0.ledgers) })
    }

    router.get("/api/barriers") { _, _ -> BarriersBody in
        BarriersBody(await engine.barrierStatus())
    }

    router.get("/api/tasks") { _, _ -> TasksBody in
        TasksBody(tasks: await engine.taskList().map(TaskBody.init))
    }

    router.get("/api/tasks/:id") { _, context -> TaskBody in
        TaskBody(try await engine.task(try taskID(context)))
    }

    router.get("/api/tasks/:id/metrics") { _, context -> TaskMetricsBody in
        let id = try taskID(context)
        return TaskMetricsBody(task: id, charts: try await engine.trainingCharts(of: id))
    }

    router.delete("/api/datasets/:name/ledgers/:task/:epoch") { _, context -> DatasetBody in
        let parameters = context.parameters
        guard let epoch = Int64(parameters.get("epoch") ?? ""), epoch >= 0 else {
            throw CoreError.invalid(
                "epoch", "must be an integer >= 0", got: Validation.quoted(parameters.get("epoch") ?? ""))
        }
        let key = LedgerKey(
            task: try TaskID(parameters.get("task") ?? "", field: "task id"), dataset: parameters.get("name") ?? "",
            epoch: epoch)
        let (record, ledgers) = try await engine.dropLedger(key)
        return DatasetBody(record: record, ledgers: ledgers)
    }

    router.post("/api/tasks") { request, context -> EditedResponse<TaskBody> in
        let body: CreateTaskRequest
        do {
            body = try await request.decode(as: CreateTaskRequest.self, context: context)
        } catch let error as HTTPError {
            throw CoreError(
                .invalidArgument,
                "the body must be a JSON object {name, world_size?, min_world_size?, dataset?, epochs?, config?}: \(error.body ?? "\(error.status)")"
            )
        } catch {
            throw CoreError(
                .invalidArgument,
                "the body must be a JSON object {name, world_size?, min_world_size?, dataset?, epochs?, config?}: \(error)"
            )
        }
        let record = try await engine.createTask(try body.spec())
        return EditedResponse(status: .created, response: TaskBody(try await engine.task(record.taskID)))
    }

    router.post("/api/tasks/:id/stop") { _, context -> TaskBody in
        let id = try taskID(context)
        _ = try await engine.stopTask(id)
        return TaskBody(try await engine.task(id))
    }

    router.get("/api/logs") { request, _ -> LogsBody in
        let query = try LogsQuery(request.uri.queryParameters)
        let page = logs.page(
            minimumLevel: query.level, since: query.since, afterSequence: query.afterSequence, worker: query.worker,
            limit: query.limit)
        return LogsBody(entries: page.entries, total: page.total, capacity: logs.capacity)
    }

    router.get("/api/metrics") { _, _ -> MetricsBody in
        MetricsBody(await engine.metricsSnapshot(), rpc: engine.metrics.rpcFigures)
    }

    // Prometheus text exposition (version 0.0.4).
    router.get("/metrics") { _, _ -> Response in
        _ = await engine.metricsSnapshot()  // sets the gauges
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: engine.metrics.prometheusText())))
    }

    // The whole state in one call, as the reference's dashboard reads it, and the id of the newest event before any
    // of it was read: a client applying the events after that id on top misses nothing.
    router.get("/api/dashboard") { _, _ -> DashboardBody in
        DashboardBody(
            eventID: engine.events.lastEventID,
            status: await statusBody(engine: engine, listeners: listeners),
            workers: WorkersBody(workers: await engine.workerStatuses().map(WorkerBody.init)),
            tasks: TasksBody(tasks: await engine.taskList().map(TaskBody.init)),
            datasets: DatasetsBody(
                datasets: await engine.datasets().map { DatasetBody(record: $0.record, ledgers: $0.ledgers) }),
            barriers: BarriersBody(await engine.barrierStatus()),
            checkpoints: CheckpointsBody(
                records: await engine.checkpointRecords(), location: engine.checkpointLocation),
            metrics: MetricsBody(await engine.metricsSnapshot(), rpc: engine.metrics.rpcFigures),
            logs: LogsBody(
                entries: logs.query(minimumLevel: .info, since: nil, worker: nil, limit: 50), total: logs.total,
                capacity: logs.capacity))
    }

    router.get("/api/checkpoints") { _, _ -> CheckpointsBody in
        CheckpointsBody(records: await engine.checkpointRecords(), location: engine.checkpointLocation)
    }

    // Live updates (server-sent events); with an admin token, a stream needs a ticket instead (see EventsRoute).
    let events = EventsRoute(bus: engine.events, ticketsRequired: adminToken != nil)
    router.get("/api/events") { request, context -> Response in
        try events.stream(request, context: context)
    }

    router.post("/api/events/ticket") { _, _ -> TicketBody in
        try events.ticket()
    }

    // The dashboard's files, compiled into the binary (served without the admin token: they hold no data).
    router.get("/") { request, _ -> Response in
        try DashboardBundle.response(for: "index.html", request: request)
    }

    router.get("/index.html") { request, _ -> Response in
        try DashboardBundle.response(for: "index.html", request: request)
    }

    router.get("/app.js") { request, _ -> Response in
        try DashboardBundle.response(for: "app.js", request: request)
    }

    router.get("/app.js.map") { request, _ -> Response in
        try DashboardBundle.response(for: "app.js.map", request: request)
    }

    router.get("/app.css") { request, _ -> Response in
        try DashboardBundle.response(for: "app.css", request: request)
    }

    return router
}

/// The `:id` of a task route, validated.
private func taskID(_ context: APIRequestContext) throws(CoreError) -> TaskID {
    try TaskID(context.parameters.get("id") ?? "", field: "task id", emptyMeansDefault: false)
}

/// `GET /api/status`'s body.
private func statusBody(engine: CoordinatorEngine, listeners: Listeners) async -> StatusBody {
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

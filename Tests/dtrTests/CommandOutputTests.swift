import ArgumentParser
import Foundation
import Testing

@testable import dtr

/// A body as the API sends it.
private func json(_ text: String) throws -> JSON {
    try JSON(data: Data(text.utf8))
}

@Suite("dtr client commands: reading the API's JSON and printing it for people")
struct CommandOutputTests {
    @Test("JSON is read loosely: unknown keys are kept, missing ones read as null, numbers keep their kind")
    func looseJSON() throws {
        let value = try json(#"{"a": 1, "b": 0.5, "c": null, "d": [true, "x"], "seed": 18446744073709551615}"#)
        #expect(value["a"] == .int(1) && value["a"].int == 1 && value["b"].double == 0.5)
        #expect(value["c"].isNull && value["missing"].isNull && value["missing"]["deeper"].isNull)
        #expect(value["d"].array == [.bool(true), .string("x")] && value["a"].array.isEmpty)
        #expect(value["seed"] == .unsigned(.max))
        #expect(value.compactText == #"{"a":1,"b":0.5,"c":null,"d":[true,"x"],"seed":18446744073709551615}"#)
        #expect(try json(#""2026-11-29T08:00:03Z""#).date == Date(timeIntervalSince1970: 1_795_939_203))
    }

    @Test("workers: a row per worker with rank, status, heartbeat age, step, metrics and address")
    func workers() throws {
        let body = try json(
            """
            {"workers": [
              {"worker_id": "worker-0", "task_id": "default", "rank": 0, "host": "10.0.0.5", "port": 29500,
               "status": "healthy", "last_heartbeat_age_seconds": 0.41, "step": 1200,
               "metrics": {"loss": 0.31, "grad_norm": null}, "future_field": {"x": 1}},
              {"worker_id": "w9", "task_id": "default", "rank": null, "host": "10.0.0.6", "port": 29501,
               "status": "dead", "last_heartbeat_age_seconds": 190, "step": 0, "metrics": {}}
            ]}
            """)
        #expect(
            WorkersCommand.table(body["workers"].array).render() == """
                RANK   WORKER     TASK      STATUS    HEARTBEAT   STEP   METRICS                   HOST
                   0   worker-0   default   healthy    0.4s ago   1200   grad_norm=n/a loss=0.31   10.0.0.5:29500
                   -   w9         default   dead      3m10s ago      0   -                         10.0.0.6:29501

                """)
    }

    @Test("tasks: members over world size, age, how long it ran, why it ended")
    func tasks() throws {
        let body = try json(
            """
            {"tasks": [
              {"task_id": "mnist", "status": "running", "world_size": 4, "workers": 3, "dataset": "digits",
               "epochs": 3, "created_at": "2026-11-29T08:00:00Z", "started_at": "2026-11-29T08:00:03Z",
               "ended_at": null, "reason": null},
              {"task_id": "old", "status": "stopped", "world_size": 0, "workers": 0, "dataset": null, "epochs": null,
               "created_at": "2026-11-29T07:00:00Z", "started_at": "2026-11-29T07:00:00Z",
               "ended_at": "2026-11-29T07:42:00Z", "reason": "stop requested; every worker left"}
            ]}
            """)
        let now = try #require(try json(#""2026-11-29T08:03:03Z""#).date)
        #expect(
            TasksListCommand.table(body["tasks"].array, now: now).render() == """
                TASK    STATUS    WORKERS   DATASET   EPOCHS    AGE   RAN   REASON
                mnist   running       3/4   digits         3   3m3s    3m
                old     stopped         0   -              -   1h3m   42m   stop requested; every worker left

                """)
    }

    @Test("checkpoints: parts over world size, size, commit time, throughput; an abort shows its reason")
    func checkpoints() throws {
        let body = try json(
            """
            {"checkpoints": [
              {"checkpoint_id": "default/step-000000001000-a1", "task_id": "default", "step": 1000, "epoch": 1,
               "status": "committed", "world_size": 4, "parts": 4, "total_bytes": 4294967296,
               "created_at": "2026-11-29T07:00:00Z", "commit_latency_seconds": 9.2,
               "write_bytes_per_second": 512000000, "metrics": {"loss": 0.31}, "abort_reason": null},
              {"checkpoint_id": "default/step-000000000500-a1", "task_id": "default", "step": 500, "epoch": 0,
               "status": "aborted", "world_size": 4, "parts": 2, "total_bytes": 0,
               "created_at": "2026-11-29T06:00:00Z", "commit_latency_seconds": null,
               "write_bytes_per_second": null, "metrics": {}, "abort_reason": "rank 3 left"}
            ]}
            """)
        let now = try #require(try json(#""2026-11-29T07:10:00Z""#).date)
        #expect(
            CheckpointsCommand.table(body["checkpoints"].array, now: now).render() == """
                CHECKPOINT                     TASK      STEP   EPOCH   STATUS      PARTS      SIZE   COMMIT       WRITE     AGE   METRICS
                default/step-000000001000-a1   default   1000       1   committed     4/4   4.0 GiB     9.2s   488 MiB/s     10m   loss=0.31
                default/step-000000000500-a1   default    500       0   aborted       2/4       0 B        -           -   1h10m   aborted: rank 3 left

                """)
    }

    @Test("logs: lines as dtr serve writes them, metadata sorted and quoted where needed")
    func logs() throws {
        let body = try json(
            """
            {"logs": [{"sequence": 812, "timestamp": "2026-11-29T08:00:03Z", "level": "info", "label": "dtr",
                       "message": "worker joined", "metadata": {"worker_id": "w1", "task_id": "mnist"}},
                      {"sequence": 813, "timestamp": "2026-11-29T08:00:04Z", "level": "error", "label": "dtr",
                       "message": "checkpoint aborted", "metadata": {"reason": "rank 3 left"}}]}
            """)
        #expect(
            LogsCommand.lines(body["logs"].array, style: .plain) == """
                2026-11-29T08:00:03Z info dtr: worker joined task_id=mnist worker_id=w1
                2026-11-29T08:00:04Z error dtr: checkpoint aborted reason="rank 3 left"

                """)
        #expect(LogsCommand.lines(body["logs"].array, style: Style(colour: true)).contains("\u{1B}[31merror\u{1B}[0m"))
    }

    @Test("status: version, uptime, addresses, heartbeat timings, workers and tasks by status, sessions")
    func status() throws {
        let status = try json(
            """
            {"version": "0.1.0", "host": "127.0.0.1", "grpc_port": 50051, "http_port": 51051, "uptime_seconds": 192.5,
             "heartbeat": {"interval_ms": 1000, "suspect_after_ms": 2000, "dead_after_ms": 5000},
             "workers": {"total": 5, "healthy": 3, "suspect": 0, "dead": 1, "left": 1}, "sessions": 3, "tasks": []}
            """)
        let tasks = try json(#"[{"status": "running"}, {"status": "stopped"}, {"status": "running"}]"#)
        #expect(
            StatusCommand.summary(status: status, tasks: tasks, api: "http://127.0.0.1:51051", style: .plain) == """
                Coordinator   dtruntime 0.1.0, up 3m12s
                HTTP API      http://127.0.0.1:51051
                gRPC          127.0.0.1:50051
                Heartbeats    every 1.0s; suspect after 2.0s, dead after 5.0s
                Workers       5: 3 healthy, 1 dead, 1 left
                Tasks         3: 2 running, 1 stopped
                Sessions      3 open

                """)
        let empty = try json(#"{"workers": {"total": 0}, "sessions": 0}"#)
        let summary = StatusCommand.summary(status: empty, tasks: .array([]), api: "http://x:1", style: .plain)
        #expect(summary.contains("Workers       none\n") && summary.contains("Tasks         none\n"))
    }

    @Test("tasks stop says what happens next")
    func stopSummary() throws {
        #expect(
            TasksStopCommand.summary(try json(#"{"task_id": "job", "status": "stopping", "workers": 3}"#))
                == "task job is stopping: its 3 workers were told to stop; it is stopped once they have left\n")
        #expect(
            TasksStopCommand.summary(try json(#"{"task_id": "job", "status": "stopped", "workers": 0}"#))
                == "task job is stopped\n")
    }

    @Test("--api: a flag, else DTR_API, else the default; HOST:PORT means http; anything else is a usage error")
    func apiAddress() throws {
        #expect(try APIOptions.baseURL(nil, environment: [:]) == "http://127.0.0.1:51051")
        #expect(
            try APIOptions.baseURL(nil, environment: ["DTR_API": "https://c.example:8443/"]) == "https://c.example:8443"
        )
        #expect(
            try APIOptions.baseURL("10.0.0.5:51051", environment: ["DTR_API": "http://x:1"]) == "http://10.0.0.5:51051")
        for bad in ["ftp://x", "http://", "http://x:1/?a=b", "::"] {
            #expect(throws: ValidationError.self) { try APIOptions.baseURL(bad, environment: [:]) }
        }
    }

    @Test("the token comes from --token-file, else DTR_ADMIN_TOKEN; never from a flag")
    func token() throws {
        let file = FileManager.default.temporaryDirectory.appending(path: "dtr-token-\(UUID().uuidString)")
        try "  secret-from-file-0123\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let fromFile = try APIOptions.parse(["--token-file", file.path]).settings(
            environment: ["DTR_ADMIN_TOKEN": "from-env"])
        #expect(fromFile.token == "secret-from-file-0123" && fromFile.tokenSource == "--token-file \(file.path)")
        let fromEnv = try APIOptions.parse([]).settings(environment: ["DTR_ADMIN_TOKEN": "from-env"])
        #expect(fromEnv.token == "from-env" && fromEnv.tokenSource == "DTR_ADMIN_TOKEN")
        #expect(try APIOptions.parse([]).settings(environment: [:]).token == nil)
        #expect(throws: APIFailure.self) {
            try APIOptions.parse(["--token-file", "/nonexistent/token"]).settings(environment: [:])
        }
        #expect(throws: (any Error).self) { try APIOptions.parse(["--token", "x"]) }
    }

    @Test("a 401 says whether the token was missing or wrong, and what to set")
    func unauthorized() throws {
        let body = try json(#"{"error": {"code": "unauthenticated", "message": "the admin token is wrong"}}"#)
        let settings = APISettings(
            baseURL: "http://x:1", token: "t", tokenSource: "DTR_ADMIN_TOKEN", caFile: nil, timeout: .seconds(1))
        let wrong = APIFailure.answer(status: 401, body: body, settings: settings, request: "GET /api/workers")
        #expect(wrong.message.contains("refused the admin token from DTR_ADMIN_TOKEN"))
        #expect(wrong.message.contains("the admin token is wrong") && wrong.kind == .status(401))
        var anonymous = settings
        (anonymous.token, anonymous.tokenSource) = (nil, nil)
        let missing = APIFailure.answer(status: 401, body: body, settings: anonymous, request: "GET /api/workers")
        #expect(missing.message.hasPrefix("the coordinator requires the admin token (HTTP 401 unauthenticated"))
        #expect(missing.message.contains("set DTR_ADMIN_TOKEN"))
        let notFound = APIFailure.answer(
            status: 404, body: try json(#"{"error": {"code": "not_found", "message": "task x does not exist"}}"#),
            settings: settings, request: "POST /api/tasks/x/stop")
        #expect(notFound.message == "task x does not exist (HTTP 404 not_found)")
        // A follower retries what may pass, and stops at the rest.
        #expect(!wrong.isTransient && !notFound.isTransient)
        #expect(APIFailure("", kind: .transport).isTransient && APIFailure("", kind: .status(429)).isTransient)
        #expect(APIFailure("", kind: .status(503)).isTransient && !APIFailure("", kind: .other).isTransient)
    }
}

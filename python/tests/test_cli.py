"""The `dtr` client commands (status, workers, tasks, logs, checkpoints) against a live coordinator.

Everything is real: the `dtr` binary as a user runs it, a coordinator it talks to over HTTP, worker processes of the
SDK, a checkpoint saved through `CheckpointManager`. Each command's table is checked (headers and a row's content),
and its `--json` against what the API itself answers.
"""

from __future__ import annotations

import json
import os
import pty
import queue
import re
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import pytest
from test_tls import make_certificates

from conftest import FAST, WorkerProcess, free_port, wait_until, workers_by_id
from dtruntime import CheckpointManager, LocalCoordinator, Worker

TOKEN = "cli-admin-token-0123456789"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (trace|debug|info|notice|warning|error|critical) \S+: ")
DURATION = r"(\d+ms|\d+\.\ds|\d+s|\d+m(\d+s)?|\d+h(\d+m)?|\d+d(\d+h)?)"


def dtr(
    binary: str, *args: str, api: str | None = None, token: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs `dtr` as a user would, with none of this process's DTR_* variables but those given."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DTR_")}
    if api is not None:
        environment["DTR_API"] = api
    if token is not None:
        environment["DTR_ADMIN_TOKEN"] = token
    environment.update(env or {})
    return subprocess.run([binary, *args], check=False, env=environment, capture_output=True, text=True, timeout=60)


def table(stdout: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The headers of a table and its rows by their first text column (cells are 3+ spaces apart, a right-aligned
    column's padding included; no cell holds two spaces in a row)."""
    assert "\x1b" not in stdout, "no ANSI colour when standard output is not a terminal"
    lines = stdout.rstrip("\n").split("\n")
    headers = lines[0].split()
    rows: dict[str, dict[str, str]] = {}
    key = 1 if headers[0] == "RANK" else 0
    for line in lines[1:]:
        cells = re.split(r" {2,}", line.strip())
        cells += [""] * (len(headers) - len(cells))  # an empty last cell (a task's reason) is left out
        assert len(cells) == len(headers), line
        rows[cells[key]] = dict(zip(headers, cells, strict=True))
    return headers, rows


# MARK: A coordinator with workers, tasks, a dead worker and a checkpoint, shared by the read-only tests


@dataclass
class Cluster:
    coordinator: LocalCoordinator
    workers: list[WorkerProcess]

    @property
    def api(self) -> str:
        return self.coordinator.http_url


@pytest.fixture(scope="module")
def cluster(dtr_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("cli") / "data"
    with LocalCoordinator(dtr_binary, data_dir=data_dir, args=FAST) as coordinator:
        created = coordinator.post_json(
            "/api/tasks", {"name": "job", "world_size": 2, "dataset": "digits", "epochs": 3, "config": {"lr": 0.1}}
        )
        assert created["status"] == "pending"
        workers = [WorkerProcess(coordinator.grpc_address, f"w{rank}", "--task", "job") for rank in range(2)]
        doomed = WorkerProcess(coordinator.grpc_address, "doomed", "--task", "scratch")
        try:
            for worker in [*workers, doomed]:
                worker.wait_for(lambda event: event["event"] == "registered")
            with (
                Worker(coordinator.grpc_address, "saver", task_id="train", host="127.0.0.1") as saver,
                CheckpointManager(worker=saver) as manager,
            ):
                manager.save({"weights": np.arange(4096, dtype=np.float32)}, step=10)
            doomed.kill()  # SIGKILL: the coordinator declares it dead (and logs warnings about it)
            wait_until(lambda: workers_by_id(coordinator)["doomed"]["status"] == "dead")
            wait_until(lambda: all(workers_by_id(coordinator)[f"w{rank}"]["step"] > 0 for rank in range(2)))
            wait_until(lambda: coordinator.get_json("/api/tasks/scratch")["status"] == "failed")
            yield Cluster(coordinator, workers)
        finally:
            for worker in [*workers, doomed]:
                if worker.process.poll() is None:
                    worker.kill()


# MARK: status


def test_status_summarises_version_uptime_workers_tasks_and_sessions(cluster, dtr_binary):
    result = dtr(dtr_binary, "status", api=cluster.api)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out
    version = cluster.coordinator.get_json("/api/health")["version"]
    assert re.search(rf"^Coordinator\s+dtruntime {re.escape(version)}, up {DURATION}$", out, re.M), out
    assert re.search(rf"^HTTP API\s+{re.escape(cluster.api)}$", out, re.M), out
    assert re.search(rf"^gRPC\s+127\.0\.0\.1:{cluster.coordinator.grpc_port}$", out, re.M), out
    assert re.search(r"^Heartbeats\s+every 0\.2s; suspect after 0\.6s, dead after 1\.5s$", out, re.M), out
    assert re.search(r"^Workers\s+4: 2 healthy, 1 dead, 1 left$", out, re.M), out
    assert re.search(r"^Tasks\s+3: 1 running, 1 completed, 1 failed$", out, re.M), out
    assert re.search(r"^Sessions\s+2 open$", out, re.M), out


def test_status_json_is_the_apis_status_and_tasks(cluster, dtr_binary):
    result = dtr(dtr_binary, "status", "--json", api=cluster.api)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"status", "tasks"}
    api_status = cluster.coordinator.get_json("/api/status")
    assert set(document["status"]) == set(api_status)
    assert document["status"]["workers"] == api_status["workers"]
    assert document["tasks"] == cluster.coordinator.get_json("/api/tasks")["tasks"]


# MARK: workers


def test_workers_table_has_a_row_per_worker(cluster, dtr_binary):
    result = dtr(dtr_binary, "workers", api=cluster.api)
    assert result.returncode == 0, result.stderr
    headers, rows = table(result.stdout)
    assert headers == ["RANK", "WORKER", "TASK", "STATUS", "HEARTBEAT", "STEP", "METRICS", "HOST"]
    assert set(rows) == {"w0", "w1", "doomed", "saver"}
    api = workers_by_id(cluster.coordinator)
    for worker_id in ("w0", "w1"):
        row = rows[worker_id]
        assert row["RANK"] == str(api[worker_id]["rank"]) and row["TASK"] == "job" and row["STATUS"] == "healthy"
        assert re.fullmatch(DURATION + " ago", row["HEARTBEAT"]), row
        assert int(row["STEP"]) > 0 and re.fullmatch(r"loss=[0-9.e+-]+", row["METRICS"]), row
        assert row["HOST"] == f"127.0.0.1:{api[worker_id]['port']}"
    assert rows["doomed"]["RANK"] == "-" and rows["doomed"]["STATUS"] == "dead" and rows["doomed"]["TASK"] == "scratch"
    assert rows["saver"]["STATUS"] == "left" and rows["saver"]["METRICS"] == "-"


def test_workers_of_one_task_and_json(cluster, dtr_binary):
    _, rows = table(dtr(dtr_binary, "workers", "--task", "job", api=cluster.api).stdout)
    assert set(rows) == {"w0", "w1"}

    result = dtr(dtr_binary, "workers", "--task", "job", "--json", api=cluster.api)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    api = cluster.coordinator.get_json("/api/workers?task=job")
    assert set(document) == {"workers"}
    assert [worker["worker_id"] for worker in document["workers"]] == [worker["worker_id"] for worker in api["workers"]]
    assert all(set(worker) == set(api["workers"][0]) for worker in document["workers"])

    empty = dtr(dtr_binary, "workers", "--task", "nobody", api=cluster.api)
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "No workers in task nobody.\n")

    bad = dtr(dtr_binary, "workers", "--task", "../x", api=cluster.api)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("Error: task must be") and "(HTTP 400 invalid_argument)" in bad.stderr, bad.stderr


def test_colours_only_on_a_terminal_and_never_with_no_color(cluster, dtr_binary):
    def on_a_terminal(env: dict[str, str]) -> str:
        leader, follower = pty.openpty()
        environment = {
            key: value for key, value in os.environ.items() if not key.startswith("DTR_") and key != "NO_COLOR"
        }
        environment.update({"DTR_API": cluster.api, "TERM": "xterm", **env})
        process = subprocess.Popen([dtr_binary, "workers"], stdout=follower, stderr=subprocess.PIPE, env=environment)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        assert process.wait(timeout=30) == 0
        return b"".join(chunks).decode()

    assert "\x1b[32mhealthy\x1b[0m" in on_a_terminal({})
    assert "\x1b[31mdead\x1b[0m" in on_a_terminal({})
    assert "\x1b" not in on_a_terminal({"NO_COLOR": "1"})


# MARK: tasks


def test_tasks_table_and_json(cluster, dtr_binary):
    result = dtr(dtr_binary, "tasks", api=cluster.api)
    assert result.returncode == 0, result.stderr
    headers, rows = table(result.stdout)
    assert headers == ["TASK", "STATUS", "WORKERS", "DATASET", "EPOCHS", "AGE", "RAN", "REASON"]
    assert set(rows) == {"job", "scratch", "train"}
    job = rows["job"]
    assert [job[key] for key in ("STATUS", "WORKERS", "DATASET", "EPOCHS", "REASON")] == [
        "running",
        "2/2",
        "digits",
        "3",
        "",
    ]
    assert re.fullmatch(DURATION, job["AGE"]) and re.fullmatch(DURATION, job["RAN"]), job
    assert rows["scratch"]["STATUS"] == "failed" and rows["scratch"]["WORKERS"] == "0"
    assert rows["scratch"]["REASON"] == cluster.coordinator.get_json("/api/tasks/scratch")["reason"] != ""
    assert rows["train"]["STATUS"] == "completed" and rows["train"]["DATASET"] == "-"

    _, listed = table(dtr(dtr_binary, "tasks", "list", api=cluster.api).stdout)  # `list` is the default
    assert {task: row["STATUS"] for task, row in listed.items()} == {task: row["STATUS"] for task, row in rows.items()}
    as_json = dtr(dtr_binary, "tasks", "--json", api=cluster.api)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == cluster.coordinator.get_json("/api/tasks")


def test_tasks_create_sends_every_field_and_reports_refusals(coordinator_factory, dtr_binary):
    coordinator = coordinator_factory()
    api = coordinator.http_url
    result = dtr(
        dtr_binary,
        "tasks",
        "create",
        "made",
        "--world-size",
        "2",
        "--min-world-size",
        "1",
        "--dataset",
        "digits",
        "--epochs",
        "4",
        "--config",
        '{"lr": 0.1, "layers": [64, 32]}',
        api=api,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        'task made created (pending): workers join it with Worker(..., task_id="made") or dtrun --task made\n'
    )
    task = coordinator.get_json("/api/tasks/made")
    assert (task["world_size"], task["min_world_size"]) == (2, 1)
    assert (task["dataset"], task["epochs"], task["created_by"]) == ("digits", 4, "api")
    assert task["config"] == {"lr": 0.1, "layers": [64, 32]}

    again = dtr(dtr_binary, "tasks", "create", "made", api=api)
    assert again.returncode == 1 and "(HTTP 409 already_exists)" in again.stderr, again.stderr

    as_json = dtr(dtr_binary, "tasks", "create", "other", "--json", api=api)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == coordinator.get_json("/api/tasks/other")

    bad = dtr(dtr_binary, "tasks", "create", "x", "--epochs", "0", api=api)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: epochs must be"), bad.stderr
    assert "(HTTP 400 invalid_argument)" in bad.stderr

    not_json = dtr(dtr_binary, "tasks", "create", "y", "--config", "[1]", api=api)
    assert not_json.returncode == 64 and "--config must be a JSON object" in not_json.stderr
    assert "Usage: dtr tasks create" in not_json.stderr
    assert [task["task_id"] for task in coordinator.get_json("/api/tasks")["tasks"]] == ["made", "other"]


def test_tasks_stop_really_stops_the_task(coordinator_factory, spawn_worker, dtr_binary):
    coordinator = coordinator_factory()
    api = coordinator.http_url
    assert dtr(dtr_binary, "tasks", "create", "victim", "--world-size", "2", api=api).returncode == 0
    workers = [spawn_worker(coordinator.grpc_address, f"v{rank}", "--task", "victim") for rank in range(2)]
    for worker in workers:
        worker.wait_for(lambda event: event["event"] == "registered")

    result = dtr(dtr_binary, "tasks", "stop", "victim", api=api)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "task victim is stopping: its 2 workers were told to stop; it is stopped once they have left\n"
    )
    for worker in workers:
        worker.wait_for(lambda event: event["event"] == "exited")
        assert worker.process.wait(timeout=15) == 0
        assert any(event.get("command") == "STOP" for event in worker.events)
    wait_until(lambda: coordinator.get_json("/api/tasks/victim")["status"] == "stopped")
    _, rows = table(dtr(dtr_binary, "tasks", api=api).stdout)
    assert rows["victim"]["STATUS"] == "stopped" and rows["victim"]["REASON"] == "stop requested; every worker left"

    again = dtr(dtr_binary, "tasks", "stop", "victim", "--json", api=api)
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "stopped"
    ghost = dtr(dtr_binary, "tasks", "stop", "ghost", api=api)
    assert ghost.returncode == 1 and ghost.stdout == "" and "(HTTP 404 not_found)" in ghost.stderr, ghost.stderr


# MARK: checkpoints


def test_checkpoints_table_filter_and_json(cluster, dtr_binary):
    result = dtr(dtr_binary, "checkpoints", api=cluster.api)
    assert result.returncode == 0, result.stderr
    headers, rows = table(result.stdout)
    assert headers == [
        "CHECKPOINT",
        "TASK",
        "STEP",
        "EPOCH",
        "STATUS",
        "PARTS",
        "SIZE",
        "COMMIT",
        "WRITE",
        "AGE",
        "METRICS",
    ]
    row = rows["train/step-000000000010-a1"]
    assert [row[key] for key in ("TASK", "STEP", "EPOCH", "STATUS", "PARTS")] == [
        "train",
        "10",
        "0",
        "committed",
        "1/1",
    ]
    api = cluster.coordinator.get_json("/api/checkpoints")
    assert re.fullmatch(r"\d+\.\d KiB", row["SIZE"]) and api["checkpoints"][0]["total_bytes"] > 4096 * 4
    assert re.fullmatch(DURATION, row["COMMIT"]) and re.fullmatch(DURATION, row["AGE"]), row
    assert re.fullmatch(r"[0-9.]+ (B|KiB|MiB|GiB)/s", row["WRITE"]), row

    filtered = dtr(dtr_binary, "checkpoints", "--task", "train", "--json", api=cluster.api)
    assert filtered.returncode == 0, filtered.stderr
    assert json.loads(filtered.stdout) == api
    assert json.loads(dtr(dtr_binary, "checkpoints", "--json", api=cluster.api).stdout) == api

    none = dtr(dtr_binary, "checkpoints", "--task", "job", api=cluster.api)
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "No checkpoints of task job.\n")
    none_json = json.loads(dtr(dtr_binary, "checkpoints", "--task", "job", "--json", api=cluster.api).stdout)
    assert none_json == {**api, "checkpoints": []}


# MARK: logs


def test_logs_lines_and_filters(cluster, dtr_binary):
    result = dtr(dtr_binary, "logs", "--limit", "3", api=cluster.api)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(LOG_LINE.match(line) for line in lines), lines

    warnings = dtr(dtr_binary, "logs", "--level", "warning", api=cluster.api).stdout.splitlines()
    assert any("worker declared dead" in line and "worker_id=doomed" in line for line in warnings), warnings
    assert all(LOG_LINE.match(line)[1] in ("warning", "error", "critical") for line in warnings), warnings

    doomed = dtr(dtr_binary, "logs", "--worker", "doomed", api=cluster.api).stdout.splitlines()
    assert any(" worker joined " in line for line in doomed) and any("declared dead" in line for line in doomed)
    assert all("worker_id=doomed" in line for line in doomed), doomed

    as_json = dtr(dtr_binary, "logs", "--worker", "w0", "--json", api=cluster.api)
    document = json.loads(as_json.stdout)
    assert set(document) == {"logs", "total", "capacity"} and document["logs"]
    assert all(entry["metadata"]["worker_id"] == "w0" for entry in document["logs"])

    bad = dtr(dtr_binary, "logs", "--level", "loud", api=cluster.api)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: level must be one of"), bad.stderr


class Follower:
    """`dtr logs -f ...` in a child process; its standard output lines are collected in the background."""

    def __init__(self, binary: str, api: str, *args: str) -> None:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("DTR_")}
        self.process = subprocess.Popen(
            [binary, "logs", "-f", *args],
            env={**environment, "DTR_API": api},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self._queue.put), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.errors.append), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream: IO[str], sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line)

    def _drain(self) -> None:
        while not self._queue.empty():
            self.lines.append(self._queue.get())

    def wait_for(self, text: str) -> None:
        def seen() -> bool:
            self._drain()
            return any(text in line for line in self.lines)

        try:
            wait_until(seen, timeout=20)
        except AssertionError:
            raise AssertionError(f"no {text!r} in {self.lines}; standard error: {self.errors}") from None

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: SIGINT, then the exit status and standard error."""
        self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=20)
        for pump in self._pumps:
            pump.join(timeout=20)
        self._drain()
        return status, "".join(self.errors)


def test_logs_follow_prints_new_entries_and_exits_0_on_ctrl_c(coordinator_factory, dtr_binary):
    coordinator = coordinator_factory()
    follower = Follower(dtr_binary, coordinator.http_url, "--level", "info")
    follower.wait_for("coordinator listening")  # what was there before
    assert coordinator.post_json("/api/tasks", {"name": "followed"})["status"] == "pending"
    follower.wait_for("task created task_id=followed")
    status, stderr = follower.interrupt()
    assert (status, stderr) == (0, "")
    assert all(LOG_LINE.match(line) for line in follower.lines), follower.lines
    assert sum("task_id=followed" in line for line in follower.lines) == 1


def test_logs_follow_json_prints_every_entry_once_in_order(coordinator_factory, dtr_binary):
    coordinator = coordinator_factory()
    follower = Follower(dtr_binary, coordinator.http_url, "--json", "--level", "info", "--limit", "10000")
    follower.wait_for('"coordinator listening')
    # Several entries while it follows, some within the same millisecond.
    for index in range(5):
        coordinator.post_json("/api/tasks", {"name": f"burst-{index}"})
    follower.wait_for('"task_id":"burst-4"')
    status, stderr = follower.interrupt()
    assert (status, stderr) == (0, "")

    entries: list[dict[str, Any]] = [json.loads(line) for line in follower.lines]
    served = coordinator.get_json("/api/logs?level=info&limit=10000")["logs"]
    assert set(entries[0]) == set(served[0])
    printed = [entry["sequence"] for entry in entries]
    assert printed == [entry["sequence"] for entry in served if entry["sequence"] <= printed[-1]], "no gap, no repeat"
    assert [entry["metadata"]["task_id"] for entry in entries if entry["message"] == "task created"] == [
        f"burst-{index}" for index in range(5)
    ]


def test_logs_follow_ends_quietly_when_its_reader_goes_away(coordinator_factory, dtr_binary):
    """`dtr logs -f | head -1`: the next write finds the pipe closed, and the follower ends with status 0."""
    coordinator = coordinator_factory()
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DTR_")}
    process = subprocess.Popen(
        [dtr_binary, "logs", "-f"],
        env={**environment, "DTR_API": coordinator.http_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    assert LOG_LINE.match(process.stdout.readline())
    process.stdout.close()  # what `head -1` does after its line
    coordinator.post_json("/api/tasks", {"name": "unread"})
    assert process.wait(timeout=20) == 0
    assert process.stderr.read() == ""


def test_logs_follow_survives_a_coordinator_restart(coordinator_factory, dtr_binary):
    first = coordinator_factory()
    follower = Follower(dtr_binary, first.http_url, "--level", "info")
    assert first.post_json("/api/tasks", {"name": "before"})["status"] == "pending"
    follower.wait_for("task_id=before")
    first.kill()  # SIGKILL, then a new coordinator on the same ports and data
    second = coordinator_factory(grpc_port=first.grpc_port, http_port=first.http_port)
    assert second.post_json("/api/tasks", {"name": "after"})["status"] == "pending"
    follower.wait_for("task_id=after")
    status, stderr = follower.interrupt()
    assert status == 0
    # A restart quicker than a poll (0.5 s) is not seen as an outage, only in the uptime: no "cannot reach" needed.
    assert "the coordinator restarted; following its new log from its start" in stderr, stderr
    assert sum("task created task_id=before" in line for line in follower.lines) == 1
    restart = next(index for index, line in enumerate(follower.lines) if "task_id=before" in line)
    since_restart = follower.lines[restart + 1 :]
    assert any("coordinator listening" in line for line in since_restart), "the new log, from its start"


# MARK: failures


def test_an_unreachable_api_says_so_and_what_to_do(dtr_binary):
    port = free_port()
    for args, api in ((["status"], f"http://127.0.0.1:{port}"), (["workers", "--api", f"127.0.0.1:{port}"], None)):
        result = dtr(dtr_binary, *args, api=api)
        assert result.returncode == 1 and result.stdout == ""
        assert f"cannot reach the dtr API at http://127.0.0.1:{port} (connection refused)" in result.stderr
        assert "is `dtr serve` running? pass --api or set DTR_API" in result.stderr, result.stderr
        assert "Usage:" not in result.stderr


def test_an_api_that_does_not_answer_times_out_with_what_to_do(dtr_binary):
    with socket.socket() as silent:  # accepts connections (the kernel does) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        api = f"http://127.0.0.1:{silent.getsockname()[1]}"
        result = dtr(dtr_binary, "tasks", "--timeout", "500ms", api=api)
    assert result.returncode == 1 and result.stdout == ""
    assert f"no answer from the dtr API at {api} within 0.5s (GET /api/tasks)" in result.stderr, result.stderr
    assert "raise --timeout" in result.stderr


def test_a_missing_or_wrong_admin_token_is_refused_with_what_to_set(coordinator_factory, dtr_binary, tmp_path):
    coordinator = coordinator_factory(args=[*FAST, "--admin-token", TOKEN])
    api = coordinator.http_url

    missing = dtr(dtr_binary, "workers", api=api)
    assert missing.returncode == 1 and missing.stdout == ""
    assert "the coordinator requires the admin token (HTTP 401 unauthenticated" in missing.stderr, missing.stderr
    assert "set DTR_ADMIN_TOKEN" in missing.stderr

    wrong = dtr(dtr_binary, "tasks", "create", "sneaky", api=api, token="not-the-token-0123456789")
    assert wrong.returncode == 1 and wrong.stdout == ""
    assert "refused the admin token from DTR_ADMIN_TOKEN (HTTP 401 unauthenticated" in wrong.stderr, wrong.stderr
    assert coordinator.get_json("/api/tasks", token=TOKEN) == {"tasks": []}, "a refused request changes nothing"

    right = dtr(dtr_binary, "tasks", "create", "allowed", api=api, token=TOKEN)
    assert right.returncode == 0, right.stderr
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    from_file = dtr(dtr_binary, "tasks", "--token-file", str(token_file), api=api)
    assert from_file.returncode == 0 and "allowed" in from_file.stdout, from_file.stderr
    token_file.write_text("wrong-token-from-a-file\n")
    wrong_file = dtr(dtr_binary, "status", "--token-file", str(token_file), api=api, token=TOKEN)
    assert wrong_file.returncode == 1
    assert f"refused the admin token from --token-file {token_file}" in wrong_file.stderr, wrong_file.stderr

    on_the_command_line = dtr(dtr_binary, "status", "--token", TOKEN, api=api)
    assert on_the_command_line.returncode == 64 and "Unknown option '--token'" in on_the_command_line.stderr


def test_https_with_a_private_ca(dtr_binary, tmp_path):
    ca, cert, key = make_certificates(tmp_path)
    with LocalCoordinator(
        dtr_binary, data_dir=tmp_path / "data", args=[*FAST, "--tls-cert", str(cert), "--tls-key", str(key)], ca_file=ca
    ) as coordinator:
        api = coordinator.http_url
        assert api.startswith("https://")

        # The start-up log gives the address people open: with TLS on, an https:// one. It is logged just after the
        # `dtr ready` line the start waited for.
        def listening() -> list[dict[str, Any]]:
            logs = coordinator.get_json("/api/logs?level=info&limit=10000")["logs"]
            return [entry for entry in logs if entry["message"].startswith("coordinator listening")]

        announced = wait_until(listening)
        assert len(announced) == 1 and announced[0]["metadata"]["http"] == f"{api}/api/workers", announced
        untrusted = dtr(dtr_binary, "status", api=api)
        assert untrusted.returncode == 1
        assert f"TLS with the dtr API at {api} failed" in untrusted.stderr, untrusted.stderr
        assert "--ca-file or DTR_CA_FILE" in untrusted.stderr

        assert dtr(dtr_binary, "status", "--ca-file", str(ca), api=api).returncode == 0
        trusted = dtr(dtr_binary, "status", api=api, env={"DTR_CA_FILE": str(ca)})
        assert trusted.returncode == 0 and re.search(rf"^HTTP API\s+{re.escape(api)}$", trusted.stdout, re.M)

        plaintext = dtr(dtr_binary, "status", api=f"http://127.0.0.1:{coordinator.http_port}")
        assert plaintext.returncode == 1 and "use an https:// address" in plaintext.stderr, plaintext.stderr


# MARK: usage after errors (issue #12)


def test_serve_flag_errors_show_the_serve_usage_not_the_roots(dtr_binary, tmp_path):
    cases = [
        (["serve", "--bad-flag"], {}, "Unknown option '--bad-flag'"),
        (["serve", "--grpc-port", "99999"], {}, "--grpc-port must be a port number"),
        (["serve"], {"DTR_HEARTBEAT_INTERVAL": "soon"}, "DTR_HEARTBEAT_INTERVAL must be a duration"),
        (["serve", "--host", "0.0.0.0"], {}, "--host 0.0.0.0 exposes the coordinator beyond this machine"),
    ]
    for args, env, message in cases:
        result = dtr(dtr_binary, *args, "--data-dir", str(tmp_path / "data"), env=env)
        assert result.returncode == 64, result.stderr
        assert result.stderr.startswith(f"Error: {message}"), result.stderr
        assert "Usage: dtr serve" in result.stderr and "dtr <subcommand>" not in result.stderr, result.stderr

    client = dtr(dtr_binary, "logs", "--api", "ftp://somewhere")
    assert client.returncode == 64 and client.stderr.startswith("Error: --api must be the coordinator's HTTP address")
    assert "Usage: dtr logs" in client.stderr and "dtr <subcommand>" not in client.stderr

    # A failure to start (not a flag's fault) gets no usage at all.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = dtr(
            dtr_binary, "serve", "--http-port", str(port), "--grpc-port", "0", "--data-dir", str(tmp_path / "d2")
        )
    assert result.returncode == 1 and f"port {port} is in use" in result.stderr, result.stderr
    assert "Usage" not in result.stderr


def test_every_command_has_help(dtr_binary):
    root = dtr(dtr_binary, "--help")
    for command in ("serve", "status", "workers", "tasks", "logs", "checkpoints"):
        assert re.search(rf"^\s+{command}\s", root.stdout, re.M), root.stdout
    tasks = dtr(dtr_binary, "tasks", "--help").stdout
    assert all(re.search(rf"^\s+{name}[\s,]", tasks, re.M) for name in ("list", "stop", "create")), tasks

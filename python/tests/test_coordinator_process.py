"""The `dtr serve` process itself: start-up line, graceful shutdown, start-up failures people can act on."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from conftest import FAST, free_port, wait_until
from dtruntime import CoordinatorUnavailable, TrainingOrchestrator, Worker


def test_sigterm_with_open_sessions_shuts_down_gracefully(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory()
    workers = [spawn_worker(coordinator.grpc_address, f"w{i}") for i in range(3)]
    for worker in workers:
        worker.wait_for(lambda event: event.get("world_size") == 3)
    # A stream attaches with its first heartbeat, shortly after the registration reply.
    wait_until(lambda: coordinator.get_json("/api/status")["sessions"] == 3, timeout=5)
    started = time.monotonic()
    assert coordinator.stop(timeout=10) == 0
    assert time.monotonic() - started < 5, "open sessions must not hold the shutdown"
    # The workers noticed and are retrying, not crashed.
    time.sleep(0.5)
    assert all(worker.process.poll() is None for worker in workers)


def test_restart_on_the_same_data_dir_after_sigterm_keeps_everything(coordinator_factory, spawn_worker, tmp_path):
    ports = {"grpc_port": free_port(), "http_port": free_port()}
    coordinator = coordinator_factory(**ports)
    worker = spawn_worker(coordinator.grpc_address, "w0")
    worker.wait_for(lambda event: event["event"] == "registered")
    assert coordinator.stop() == 0
    restarted = coordinator_factory(**ports)
    (listed,) = restarted.get_json("/api/workers")["workers"]
    assert (listed["worker_id"], listed["rank"]) == ("w0", 0)


def run_dtr(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30, check=False)


def test_busy_ports_and_a_locked_data_dir_are_explained(coordinator_factory, dtr_binary, tmp_path):
    coordinator = coordinator_factory()
    result = run_dtr(
        dtr_binary,
        "serve",
        "--grpc-port",
        str(coordinator.grpc_port),
        "--http-port",
        "0",
        "--data-dir",
        str(tmp_path / "other"),
    )
    assert result.returncode == 1
    assert f"port {coordinator.grpc_port} is in use: pass --grpc-port" in result.stderr

    result = run_dtr(
        dtr_binary,
        "serve",
        "--grpc-port",
        "0",
        "--http-port",
        str(coordinator.http_port),
        "--data-dir",
        str(tmp_path / "third"),
    )
    assert result.returncode == 1
    assert f"port {coordinator.http_port} is in use: pass --http-port" in result.stderr

    result = run_dtr(
        dtr_binary, "serve", "--grpc-port", "0", "--http-port", "0", "--data-dir", str(coordinator.data_dir)
    )
    assert result.returncode == 1
    assert "is in use by another coordinator" in result.stderr and "pass --data-dir" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--host", "not-an-ip", "--insecure"], {}, "host must be an IP address to bind to"),
        ([], {"DTR_GRPC_PORT": "fifty"}, "DTR_GRPC_PORT must be a port number between 0 and 65535"),
        (["--dead-after", "1s"], {}, "dead timeout must be longer than the suspect timeout"),
        (["--log-level", "chatty"], {}, "--log-level must be one of trace, debug, info"),
    ],
)
def test_bad_configuration_is_explained(dtr_binary, tmp_path, args, env, message):
    result = subprocess.run(
        [dtr_binary, "serve", "--data-dir", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **env},
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_version_and_help(dtr_binary):
    assert run_dtr(dtr_binary, "--version").stdout.strip() == "0.1.0"
    help_text = run_dtr(dtr_binary, "serve", "--help").stdout
    for flag in ["--grpc-port", "--http-port", "--data-dir", "--log-level", "DTR_GRPC_PORT", "--dead-after"]:
        assert flag in help_text


def test_json_logs_on_stderr_and_recent_entries_over_http(coordinator_factory):
    coordinator = coordinator_factory(args=[*FAST, "--log-format", "json"])
    TrainingOrchestrator(coordinator.grpc_address).register_worker("logged-1", "127.0.0.1", 7001)
    lines = [json.loads(line) for line in coordinator.log_path.read_text().splitlines() if line.startswith("{")]
    joined = [line for line in lines if line["message"] == "worker joined"]
    assert joined and joined[0]["worker_id"] == "logged-1" and joined[0]["level"] == "info"
    served = coordinator.get_json("/api/logs?worker=logged-1")["logs"]
    assert [entry["message"] for entry in served] == ["worker joined"]
    assert served[0]["metadata"]["task_id"] == "default"
    assert coordinator.get_json("/api/logs?level=nope")["error"]["code"] == "invalid_argument"


def test_sigterm_fails_calls_parked_at_a_barrier_instead_of_waiting_for_them(coordinator_factory):
    coordinator = coordinator_factory(args=[])  # dead after 5 s: the silent member stays a member meanwhile
    outcome: list[BaseException] = []
    with Worker(coordinator.grpc_address, "waiter") as worker:
        TrainingOrchestrator(coordinator.grpc_address).register_worker("silent", "127.0.0.1", 7001)
        worker.wait_for(lambda view: view.world_size == 2, timeout=10)

        def wait() -> None:
            try:
                worker.barrier("never-complete", timeout=120)
            except BaseException as error:  # the test inspects it
                outcome.append(error)

        thread = threading.Thread(target=wait)
        thread.start()
        wait_until(lambda: coordinator.get_json("/api/barriers")["open"], timeout=10)
        started = time.monotonic()
        assert coordinator.stop(timeout=20) == 0
        assert time.monotonic() - started < 5, "a barrier with a 120 s timeout must not hold the shutdown"
        thread.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], CoordinatorUnavailable)
    assert "shutting down" in str(outcome[0])

"""Fixtures that start the real ``dtr serve`` binary and real worker processes on loopback."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from s3server import SeaweedS3, find_weed

from dtruntime import LocalCoordinator

REPO = Path(__file__).resolve().parents[2]
# dtruntime.torch's tests and the process barrier benchmark's need PyTorch: `make torch-test` runs them with .venv-torch
# (Debian's python3 and its torch); other interpreters leave the files out instead of failing to import torch.
collect_ignore = [] if importlib.util.find_spec("torch") else ["test_torch.py", "test_barrier_processes.py"]
# Short timeouts so failure detection is quick; the defaults (1 s / 2 s / 5 s) are covered by the Swift tests.
FAST = ["--heartbeat-interval", "200ms", "--suspect-after", "600ms", "--dead-after", "1500ms"]
INTERVAL, DEAD_AFTER = 0.2, 1.5


@pytest.fixture(scope="session")
def dtr_binary() -> str:
    binary = os.environ.get("DTR_BIN") or str(REPO / ".build" / "debug" / "dtr")
    if not Path(binary).is_file():
        pytest.fail(f"dtr binary not found at {binary}: run `swift build` first (or set DTR_BIN)")
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def coordinator_factory(dtr_binary: str, tmp_path: Path) -> Iterator[Callable[..., LocalCoordinator]]:
    """Starts coordinators (killed at the end of the test); the default data dir is shared by restarts."""
    started: list[LocalCoordinator] = []

    def start(data_dir: Path | None = None, args: list[str] | None = None, **ports: int) -> LocalCoordinator:
        coordinator = LocalCoordinator(
            dtr_binary, data_dir=data_dir or tmp_path / "data", args=FAST if args is None else args, **ports
        )
        started.append(coordinator.start())
        return coordinator

    yield start
    for coordinator in started:
        coordinator.kill()


class WorkerProcess:
    """``worker_process.py`` (or another ``script`` of this directory that prints JSON lines) in a child process; its
    JSON lines are collected in the background."""

    def __init__(self, coordinator: str, worker_id: str, *extra: str, script: str = "worker_process.py") -> None:
        self.worker_id = worker_id
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name(script)),
                "--coordinator",
                coordinator,
                "--id",
                worker_id,
                *extra,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """The first event (seen before or arriving within ``timeout``) that satisfies ``predicate``."""
        for event in self.events:
            if predicate(event):
                return event
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if event is None:
                raise AssertionError(f"{self.worker_id} exited ({self.process.wait()}) before: {self.events}")
            self.events.append(event)
            if predicate(event):
                return event
        raise AssertionError(f"{self.worker_id}: no matching event within {timeout}s; got {self.events}")

    @property
    def latest(self) -> dict[str, Any]:
        return [event for event in self.events if "rank" in event][-1]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def terminate(self) -> int:
        self.process.terminate()
        return self.process.wait(timeout=15)


@pytest.fixture
def spawn_worker() -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def spawn(coordinator: str, worker_id: str, *extra: str, script: str = "worker_process.py") -> WorkerProcess:
        worker = WorkerProcess(coordinator, worker_id, *extra, script=script)
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        if worker.process.poll() is None:
            worker.kill()


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Polls ``condition`` until it returns something truthy; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def workers_by_id(coordinator: LocalCoordinator) -> dict[str, dict[str, Any]]:
    return {worker["worker_id"]: worker for worker in coordinator.get_json("/api/workers")["workers"]}


# MARK: S3 (SeaweedFS)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One SeaweedFS S3 server for the whole session (it takes a few seconds to start)."""
    try:
        binary = find_weed()
    except FileNotFoundError as error:
        pytest.fail(str(error))
    with SeaweedS3(tmp_path_factory.mktemp("seaweedfs"), binary=binary) as server:
        server.start()
        yield server


def scrape(coordinator) -> str:
    """GET /metrics: the Prometheus text exposition."""
    with urllib.request.urlopen(coordinator.http_url + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def sample(text: str, name: str, labels: str = "") -> float:
    """The value of one sample (``labels`` as they appear between the braces) in an exposition."""
    pattern = "^" + re.escape(name) + (r"\{" + labels + r"\}" if labels else "") + r" (\S+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"no {name}{{{labels}}} in:\n{text}"
    return float(match.group(1))

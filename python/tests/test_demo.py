"""``dtr serve --demo``: the coordinator runs a swarm of simulated workers against itself, through the real API."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from dtruntime import LocalCoordinator


def snapshot(coordinator: LocalCoordinator) -> dict[str, Any]:
    dashboard = coordinator.get_json("/api/dashboard")
    workers = [worker for worker in dashboard["workers"]["workers"] if worker["demo"]]
    epochs = [
        epoch for dataset in dashboard["datasets"]["datasets"] for task in dataset["tasks"] for epoch in task["epochs"]
    ]
    return {
        "workers": workers,
        "steps": sum(worker["step"] for worker in workers),
        "samples": sum(epoch["committed_samples"] for epoch in epochs),
        "barriers": dashboard["barriers"]["released"],
        # By id: retention (the last 5 of each task) keeps the count from growing.
        "checkpoints": {
            checkpoint["checkpoint_id"]
            for checkpoint in dashboard["checkpoints"]["checkpoints"]
            if checkpoint["status"] == "committed"
        },
    }


def test_demo_swarm_trains_for_real(coordinator_factory: Callable[..., LocalCoordinator]) -> None:
    """For 10 s: demo workers appear (marked demo), and steps, shards, barriers and checkpoints all move."""
    coordinator = coordinator_factory(args=["--demo"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(snapshot(coordinator)["workers"]) < 12:
        time.sleep(0.2)
    first = snapshot(coordinator)
    assert len(first["workers"]) == 12
    assert {worker["task_id"] for worker in first["workers"]} == {"demo-mnist", "demo-resnet"}
    assert all(worker["labels"]["dtr/demo"] == "true" for worker in first["workers"])
    time.sleep(10)
    last = snapshot(coordinator)
    assert last["steps"] > first["steps"]
    # Each worker trains on: its own step moved (the demo's first crash comes 25-45 s in; one that came early, back
    # at once, may not have caught up yet).
    before = {worker["worker_id"]: worker["step"] for worker in first["workers"]}
    moved = [worker["worker_id"] for worker in last["workers"] if worker["step"] > before[worker["worker_id"]]]
    assert len(moved) >= 11, (before, last["workers"])
    assert last["samples"] > first["samples"]
    assert last["barriers"] > first["barriers"]
    # A checkpoint every 5 s of training in each task: new ones were committed in the 10 s.
    assert last["checkpoints"] - first["checkpoints"], (first["checkpoints"], last["checkpoints"])
    tasks = {task["task_id"]: task for task in coordinator.get_json("/api/tasks")["tasks"]}
    assert tasks["demo-mnist"]["workers"] == 4 and tasks["demo-resnet"]["workers"] == 8
    # Nothing went wrong on the way: no error in the log.
    assert coordinator.get_json("/api/logs?level=error")["logs"] == []
    assert " error " not in coordinator.log_path.read_text()


def test_demo_mode_environment(
    coordinator_factory: Callable[..., LocalCoordinator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEMO_MODE", "true")
    coordinator = coordinator_factory(args=[])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not snapshot(coordinator)["workers"]:
        time.sleep(0.2)
    assert snapshot(coordinator)["workers"]
    # Graceful shutdown: the demo workers leave first, so their tasks end completed.
    assert coordinator.stop() == 0


def test_demo_mode_must_be_a_boolean(dtr_binary: str, tmp_path: Any) -> None:
    result = subprocess.run(
        [dtr_binary, "serve", "--data-dir", str(tmp_path), "--grpc-port", "0", "--http-port", "0"],
        env={"DEMO_MODE": "maybe", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert 'DEMO_MODE must be true or false (got "maybe")' in result.stderr

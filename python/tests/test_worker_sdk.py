"""The Python SDK's Worker against the real coordinator: lifecycle, callbacks, errors people can act on."""

from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import DEAD_AFTER, free_port, workers_by_id
from dtruntime import CoordinatorUnavailable, FailedPrecondition, InvalidArgument, Worker


def test_unreachable_coordinator_says_what_to_do():
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(CoordinatorUnavailable, match=r"coordinator at .* unreachable: is `dtr serve` running\?"):
        Worker(address, "w", register_timeout=1.0).start()
    assert time.monotonic() - started < 5


def test_worker_context_registers_reports_and_deregisters(coordinator_factory):
    coordinator = coordinator_factory()
    changes = []
    with Worker(
        coordinator.grpc_address, "solo", gpu_count=2, labels={"zone": "a"}, on_membership_change=changes.append
    ) as worker:
        assert (worker.rank, worker.world_size, worker.task_id) == (0, 1, "default")
        worker.report(step=10, flush=True, loss=0.5)
        deadline = time.monotonic() + 5
        while workers_by_id(coordinator)["solo"]["step"] != 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        listed = workers_by_id(coordinator)["solo"]
        assert (listed["step"], listed["metrics"], listed["gpu_count"], listed["labels"]) == (
            10,
            {"loss": 0.5},
            2,
            {"zone": "a"},
        )
        with Worker(coordinator.grpc_address, "peer") as peer:
            seen = worker.wait_for_world_size(2, timeout=5)
            assert seen.membership_epoch == 2 and peer.rank == 1
        worker.wait_for(lambda view: view.world_size == 1, timeout=5)
    assert workers_by_id(coordinator)["solo"]["status"] == "left"
    assert [view.world_size for view in changes] == [2, 1]
    assert "peer left" in changes[-1].reason


def test_a_paused_worker_declared_dead_rejoins_with_a_new_rank(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory()
    first = spawn_worker(coordinator.grpc_address, "first")
    first.wait_for(lambda event: event["event"] == "registered")
    second = spawn_worker(coordinator.grpc_address, "second")
    second.wait_for(lambda event: event.get("world_size") == 2)

    os.kill(first.process.pid, signal.SIGSTOP)  # a stalled process: alive, but silent
    try:
        second.wait_for(lambda event: "first declared dead" in event.get("reason", ""), timeout=DEAD_AFTER + 2)
    finally:
        os.kill(first.process.pid, signal.SIGCONT)
    # Its next heartbeat is answered REJOIN: it registers again and takes the next rank.
    rejoined = first.wait_for(lambda event: event.get("rank") == 1 and event.get("world_size") == 2, timeout=5)
    assert rejoined["membership_epoch"] == 4
    assert workers_by_id(coordinator)["first"]["status"] == "healthy"
    assert second.wait_for(lambda event: event.get("membership_epoch") == 4)["rank"] == 0


def test_bad_worker_arguments_fail_at_start(coordinator_factory):
    coordinator = coordinator_factory()
    with pytest.raises(InvalidArgument, match="gpu_count must be between 0 and 1024"):
        Worker(coordinator.grpc_address, "w", gpu_count=5000).start()
    with (
        Worker(coordinator.grpc_address, "busy", task_id="a"),
        pytest.raises(FailedPrecondition, match="already a live member of task a"),
    ):
        Worker(coordinator.grpc_address, "busy", task_id="b").start()


def test_bad_reports_fail_in_the_training_loop_not_in_the_heartbeats(coordinator_factory):
    coordinator = coordinator_factory()
    with Worker(coordinator.grpc_address, "reporter") as worker:
        for bad in [{"step": -1}, {"step": 1.5}]:
            with pytest.raises(ValueError, match="step must be an integer >= 0"):
                worker.report(**bad)
        with pytest.raises(ValueError, match="metric names must be 1-128 printable ASCII"):
            worker.report(**{"has space": 1.0})
        with pytest.raises(ValueError, match="at most 256 metrics"):
            worker.report(**{f"m{i}": float(i) for i in range(257)})
        worker.report(step=3, flush=True, loss=float("nan"))
        deadline = time.monotonic() + 5
        while workers_by_id(coordinator)["reporter"]["step"] != 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        listed = workers_by_id(coordinator)["reporter"]
        assert (listed["step"], listed["metrics"], listed["status"]) == (3, {"loss": None}, "healthy")
        assert worker.error is None


def test_a_failing_callback_does_not_stop_the_heartbeats(coordinator_factory):
    coordinator = coordinator_factory()

    def explode(view):
        raise RuntimeError("user bug")

    with Worker(coordinator.grpc_address, "fragile", on_membership_change=explode) as worker:
        with Worker(coordinator.grpc_address, "other"):
            worker.wait_for_world_size(2, timeout=5)
        worker.wait_for(lambda view: view.world_size == 1, timeout=5)
        time.sleep(DEAD_AFTER + 0.5)
        assert workers_by_id(coordinator)["fragile"]["status"] == "healthy"

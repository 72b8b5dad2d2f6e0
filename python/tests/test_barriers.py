"""Barriers and allreduce against the real coordinator, with real worker processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dtruntime import BarrierTimeout, InvalidArgument, Worker

# The defaults (heartbeat 1 s, dead after 5 s): eight Python processes starting at once on two cores can stall a
# heartbeat for longer than the integration tests' aggressive 1.5 s.
DEFAULTS: list[str] = []
DEAD_AFTER = 5.0


class ReduceWorker:
    def __init__(self, coordinator: str, worker_id: str, seed: int, world: int, mode: str) -> None:
        command = [sys.executable, str(Path(__file__).with_name("reduce_worker.py")), "--coordinator", coordinator]
        command += ["--id", worker_id, "--seed", str(seed), "--world", str(world), "--mode", mode]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.events: list[dict[str, Any]] = []
        self.ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == "ready":
                self.ready.set()

    def last(self, kind: str) -> dict[str, Any]:
        matches = [event for event in self.events if event["event"] == kind]
        assert matches, f"no {kind} event: {self.events}"
        return matches[-1]


def test_eight_workers_allreduce_exact_sum_and_mean(coordinator_factory):
    coordinator = coordinator_factory(args=DEFAULTS)
    workers = [
        ReduceWorker(coordinator.grpc_address, f"r{i}", seed=100 + i, world=8, mode="allreduce") for i in range(8)
    ]
    for worker in workers:
        assert worker.process.wait(timeout=90) == 0
    reports = sorted((worker.last("reduced") for worker in workers), key=lambda report: report["rank"])
    assert [report["rank"] for report in reports] == list(range(8))
    vectors = [np.array(report["values"]) for report in reports]
    expected_sum = vectors[0].copy()
    for vector in vectors[1:]:
        expected_sum = expected_sum + vector  # float64, added in rank order, as the coordinator does
    float32 = [vector.astype(np.float32) for vector in vectors]
    expected_mean = float32[0].copy()
    for vector in float32[1:]:
        expected_mean = expected_mean + vector
    expected_mean = expected_mean / np.float32(8)
    for report in reports:
        assert np.array_equal(np.array(report["sum"]), expected_sum), "bit-identical float64 sum"
        assert report["mean_dtype"] == "float32"
        assert np.array_equal(np.array(report["mean"], dtype=np.float32), expected_mean)
    np.testing.assert_allclose(expected_sum, np.sum(vectors, axis=0), rtol=1e-12)
    (released,) = [coordinator.get_json("/api/barriers")["released"]]
    assert released == 2


def test_a_killed_participant_fails_every_waiter_naming_it(coordinator_factory):
    coordinator = coordinator_factory(args=DEFAULTS)
    workers = [ReduceWorker(coordinator.grpc_address, f"b{i}", seed=i, world=4, mode="wait") for i in range(3)]
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, coordinator.grpc_address], stdout=subprocess.PIPE, text=True
    )
    assert victim.stdout is not None
    victim_rank = int(victim.stdout.readline())
    for worker in workers:
        assert worker.ready.wait(60)
    while coordinator.get_json("/api/barriers")["open"][:1] == [] or (
        coordinator.get_json("/api/barriers")["open"][0]["arrived"] < 3
    ):
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    killed_at = time.time()
    for worker in workers:
        assert worker.process.wait(timeout=DEAD_AFTER + 10) == 0, "nobody hangs"
    for worker in workers:
        failure = worker.last("failed")
        assert failure["type"] == "BarrierAborted"
        assert failure["missing_ranks"] == [victim_rank] and failure["missing_workers"] == ["victim"]
        assert f"missing rank {victim_rank} (victim)" in failure["message"]
        assert failure["at"] - killed_at <= DEAD_AFTER + 1.0, "within the dead timeout + 1 s"


VICTIM = """
import sys, time
from dtruntime import Worker
with Worker(sys.argv[1], "victim", host="127.0.0.1") as worker:
    print(worker.rank, flush=True)
    time.sleep(3600)
"""


def test_barrier_timeout_and_mismatch_raise_typed_errors(coordinator_factory):
    coordinator = coordinator_factory()
    with Worker(coordinator.grpc_address, "x") as x, Worker(coordinator.grpc_address, "y") as y:
        x.wait_for_world_size(2, timeout=10)
        started = time.monotonic()
        with pytest.raises(BarrierTimeout) as timed_out:
            x.barrier("lonely", timeout=0.5)
        assert time.monotonic() - started < 3
        assert timed_out.value.missing_workers == ["y"] and timed_out.value.missing_ranks == [1]

        errors: list[Exception] = []

        def reduce_three() -> None:
            try:
                y.allreduce(np.zeros(3), op="sum", name="shape")
            except Exception as error:  # collected for the assertion below
                errors.append(error)

        thread = threading.Thread(target=reduce_three)
        thread.start()
        with pytest.raises(InvalidArgument, match="participants disagree on the reduce"):
            x.allreduce(np.zeros(4), op="sum", name="shape")
        thread.join(timeout=10)
        assert len(errors) == 1 and isinstance(errors[0], InvalidArgument)
        with pytest.raises(TypeError, match="float32 or float64"):
            x.allreduce(np.zeros(3, dtype=np.int64))

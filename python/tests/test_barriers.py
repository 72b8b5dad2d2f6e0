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

import grpc
import numpy as np
import pytest

from conftest import free_port, wait_until
from dtruntime import (
    BarrierResult,
    BarrierTimeout,
    CoordinatorClient,
    CoordinatorUnavailable,
    InvalidArgument,
    ResourceExhausted,
    StaleEpoch,
    Worker,
)
from dtruntime.v1 import coordinator_pb2 as pb

# The defaults (heartbeat 1 s, dead after 5 s): eight Python processes starting at once on two cores can stall a
# heartbeat for longer than the integration tests' aggressive 1.5 s.
DEFAULTS: list[str] = []
DEAD_AFTER = 5.0
# Threads registered as workers that never heartbeat: nobody may be declared dead during the test.
NO_DEATHS = ["--heartbeat-interval", "10s", "--suspect-after", "60s", "--dead-after", "120s"]


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


class _Arrivals:
    """Every client arriving at a barrier from a thread of its own; each one's reply or error, by index."""

    def __init__(self, clients, epoch: int, name: str, **kwargs) -> None:
        self.results: list = [None] * len(clients)

        def arrive(index: int) -> None:
            try:
                self.results[index] = clients[index].barrier_sync(name, f"t{index}", membership_epoch=epoch, **kwargs)
            except Exception as error:  # collected for the assertions
                self.results[index] = error

        self.threads = [threading.Thread(target=arrive, args=(index,)) for index in range(len(clients))]
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float = 30) -> list:
        for thread in self.threads:
            thread.join(timeout=timeout)
        return self.results


def _arrive_all(clients, epoch: int, name: str, **kwargs) -> list:
    """Every client arrives at ``name`` from a thread of its own; returns each one's reply or error, by index."""
    return _Arrivals(clients, epoch, name, **kwargs).join()


def test_threads_of_one_process_share_one_barrier_stream(coordinator_factory):
    coordinator = coordinator_factory(args=NO_DEATHS)
    clients = [CoordinatorClient(coordinator.grpc_address) for _ in range(24)]
    try:
        epoch = 0
        for index, client in enumerate(clients):
            epoch = client.register_worker(f"t{index}", "127.0.0.1", 1, task_id="threads").membership_epoch
        for round_ in range(3):
            replies = _arrive_all(clients, epoch, "sync", timeout=20)
            assert all(isinstance(reply, BarrierResult) for reply in replies), replies
            assert {reply.generation for reply in replies} == {round_ + 1}
            assert {reply.participant_count for reply in replies} == {24}
        # A stale epoch fails only its own call, with the typed error a unary call would raise.
        with pytest.raises(StaleEpoch) as stale:
            clients[0].barrier_sync("sync", "t0", membership_epoch=epoch - 1, timeout=5)
        assert stale.value.membership_epoch == epoch and stale.value.code == grpc.StatusCode.FAILED_PRECONDITION
        rpc = coordinator.get_json("/api/metrics")["rpc"]
        assert rpc["BarrierStream"]["count"] == 3 * 24 + 1 and "BarrierSync" not in rpc
        assert rpc["BarrierStream"]["errors"] == {"failed_precondition": 1}
        # Three generations released (that each leaves as one message is BarrierStreamTests' to show).
        assert coordinator.get_json("/api/barriers")["released"] == 3
    finally:
        for client in clients:
            client.close()


def test_barrier_stream_fails_waiters_when_the_coordinator_dies_and_reopens_after(coordinator_factory):
    ports = {"grpc_port": free_port(), "http_port": free_port()}
    coordinator = coordinator_factory(args=NO_DEATHS, **ports)
    clients = [CoordinatorClient(coordinator.grpc_address) for _ in range(3)]
    try:
        epoch = 0
        for index, client in enumerate(clients):
            epoch = client.register_worker(f"t{index}", "127.0.0.1", 1, task_id="restart").membership_epoch
        waiting = _Arrivals(clients[:2], epoch, "pre-crash")
        wait_until(lambda: coordinator.get_json("/api/barriers")["open"], timeout=10)
        started = time.monotonic()
        coordinator.kill()
        for thread in waiting.threads:
            thread.join(timeout=10)
        assert time.monotonic() - started < 5, "waiters must not hang on a dead coordinator"
        assert all(isinstance(result, CoordinatorUnavailable) for result in waiting.results), waiting.results
        assert all("unreachable" in str(result) for result in waiting.results)

        restarted = coordinator_factory(args=NO_DEATHS, **ports)
        assert restarted.grpc_port == ports["grpc_port"]
        replies = _arrive_all(clients, epoch, "after-restart", timeout=20)
        assert all(isinstance(reply, BarrierResult) for reply in replies), replies
        assert {reply.participant_count for reply in replies} == {3}
    finally:
        for client in clients:
            client.close()


def test_barrier_stream_refused_by_the_rate_limit_is_opened_again_when_allowed(coordinator_factory):
    # One call per second per client address, a burst of two: the two registrations use it up.
    coordinator = coordinator_factory(args=[*NO_DEATHS, "--grpc-rate-limit", "1"])
    clients = [CoordinatorClient(coordinator.grpc_address) for _ in range(2)]
    try:
        epoch = 0
        for index, client in enumerate(clients):
            epoch = client.register_worker(f"t{index}", "127.0.0.1", 1, task_id="limited").membership_epoch
        # The budget is spent: a call now is refused (a raw stub call: no SDK retry)...
        with pytest.raises(grpc.RpcError) as refused:
            clients[0]._stub.LoadCheckpoint(pb.LoadCheckpointRequest(worker_id="t0", latest=True), timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # ...so the barrier stream's opening is refused too, and the hub opens it again once the limit allows,
        # sending the arrivals it holds: both calls are released, nothing fails.
        replies = _arrive_all(clients, epoch, "limited", timeout=20)
        assert all(isinstance(reply, BarrierResult) for reply in replies), replies
        assert {reply.participant_count for reply in replies} == {2}
    finally:
        for client in clients:
            client.close()


def test_an_oversize_payload_fails_alone_and_the_shared_stream_carries_on(coordinator_factory):
    coordinator = coordinator_factory(args=[*NO_DEATHS, "--barrier-max-payload", "64KiB"])
    clients = [CoordinatorClient(coordinator.grpc_address) for _ in range(2)]
    try:
        epoch = 0
        for index, client in enumerate(clients):
            epoch = client.register_worker(f"t{index}", "127.0.0.1", 1, task_id="sizes").membership_epoch
        waiting = _Arrivals(clients[:1], epoch, "steady")
        wait_until(lambda: coordinator.get_json("/api/barriers")["open"], timeout=10)

        def payload(size: int) -> pb.ReducePayload:
            return pb.ReducePayload(op=pb.REDUCE_OP_SUM, dtype=pb.DTYPE_FLOAT32, data=bytes(size))

        # Over the per-participant limit but small enough to share a stream message: refused in-band, alone.
        with pytest.raises(ResourceExhausted, match="--barrier-max-payload"):
            clients[1].barrier_sync("big", "t1", membership_epoch=epoch, timeout=5, payload=payload(100_000))
        # Over the transport's message limit: sent on its own unary call, refused alone.
        with pytest.raises(ResourceExhausted, match="--barrier-max-payload"):
            clients[1].barrier_sync("huge", "t1", membership_epoch=epoch, timeout=5, payload=payload(2 << 20))
        # t0 is still parked on the shared stream, and is released when t1 arrives.
        assert waiting.threads[0].is_alive()
        reply = clients[1].barrier_sync("steady", "t1", membership_epoch=epoch, timeout=10)
        waiting.threads[0].join(timeout=10)
        assert isinstance(waiting.results[0], BarrierResult), waiting.results
        assert waiting.results[0].generation == reply.generation == 1
    finally:
        for client in clients:
            client.close()

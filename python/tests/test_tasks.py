"""Tasks against the real coordinator: created and stopped over HTTP, with real worker processes."""

from __future__ import annotations

import time

from conftest import wait_until
from dtruntime import DatasetRegistry, Worker


def test_a_stop_over_http_ends_every_worker_cleanly_within_two_heartbeat_intervals(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory(args=[])  # the default heartbeat interval: 1 s
    created = coordinator.post_json("/api/tasks", {"name": "job", "world_size": 3, "config": {"lr": 0.1}})
    assert created["status"] == "pending" and created["config"] == {"lr": 0.1}
    workers = [spawn_worker(coordinator.grpc_address, f"w{i}", "--task", "job") for i in range(3)]
    for worker in workers:
        worker.wait_for(lambda event: event["event"] == "registered")
    wait_until(lambda: coordinator.get_json("/api/tasks/job")["workers"] == 3)
    assert coordinator.get_json("/api/tasks/job")["status"] == "running"

    requested = time.monotonic()
    assert coordinator.post_json("/api/tasks/job/stop")["status"] == "stopping"
    for worker in workers:
        worker.wait_for(lambda event: event["event"] == "exited", timeout=10)
        assert time.monotonic() - requested < 2.0, "every worker ends its loop within two heartbeat intervals"
        assert worker.process.wait(timeout=10) == 0
        assert any(event.get("command") == "STOP" for event in worker.events)
    task = wait_until(lambda: (body := coordinator.get_json("/api/tasks/job"))["status"] == "stopped" and body)
    assert task["workers"] == 0 and task["reason"] == "stop requested; every worker left"


def test_a_stop_ends_the_epoch_iteration_after_the_batch_in_hand(coordinator_factory):
    coordinator = coordinator_factory()
    DatasetRegistry(coordinator.grpc_address).register("digits", total_samples=1000, shard_size=100, shuffle=False)
    committed: list[int] = []
    with Worker(coordinator.grpc_address, "solo", task_id="train") as worker:
        batches = 0
        for _batch in worker.epoch_batches("digits", 0, batch_size=10, on_commit=committed.extend):
            batches += 1
            if batches == 3:
                assert coordinator.post_json("/api/tasks/train/stop")["status"] == "stopping"
                wait_until(lambda: worker.stop_requested, timeout=5)
        assert batches == 3, "the loop ended after the batch in hand"
        assert committed == list(range(30)), "and that batch was committed"
    assert coordinator.get_json("/api/tasks/train")["status"] == "stopped"


def test_bad_task_requests_are_json_errors(coordinator_factory):
    coordinator = coordinator_factory()
    assert coordinator.post_json("/api/tasks", {"name": "../etc"})["error"]["code"] == "invalid_argument"
    assert coordinator.post_json("/api/tasks/ghost/stop")["error"]["code"] == "not_found"
    assert coordinator.get_json("/api/tasks") == {"tasks": []}

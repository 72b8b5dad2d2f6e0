"""Tasks against the real coordinator: created and stopped over HTTP, with real worker processes."""

from __future__ import annotations

import threading
import time

import pytest

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


def test_workers_read_their_tasks_settings_and_wait_for_its_world_size(coordinator_factory):
    coordinator = coordinator_factory()
    body = {
        "name": "job",
        "world_size": 3,
        "min_world_size": 2,
        "dataset": "digits",
        "epochs": 7,
        "config": {"lr": 0.2},
    }
    assert coordinator.post_json("/api/tasks", body)["min_world_size"] == 2
    first = Worker(coordinator.grpc_address, "w0", task_id="job", host="127.0.0.1")
    started = threading.Thread(target=first.start)
    started.start()
    time.sleep(1.0)
    assert started.is_alive(), "the first worker waits in start() for the task's min_world_size of 2"
    with Worker(coordinator.grpc_address, "w1", task_id="job", host="127.0.0.1") as second:
        started.join(timeout=10)
        assert not started.is_alive()
        settings = second.task
        assert (settings.min_world_size, settings.max_world_size) == (2, 3)
        assert (settings.dataset, settings.epochs, settings.config) == ("digits", 7, {"lr": 0.2})
        with Worker(coordinator.grpc_address, "w2", task_id="job", host="127.0.0.1"):
            # The task has its world size of 3: a fourth waits for a place, then gives up saying why.
            with pytest.raises(TimeoutError, match="already has its world size of 3 workers"):
                Worker(coordinator.grpc_address, "w3", task_id="job", host="127.0.0.1", rendezvous_timeout=2).start()
            assert coordinator.get_json("/api/tasks/job")["workers"] == 3
        first.close()


def test_a_task_created_by_its_workers_takes_the_world_size_they_ask_for(coordinator_factory):
    coordinator = coordinator_factory()
    with Worker(coordinator.grpc_address, "w0", task_id="launched", world_size="1:2", host="127.0.0.1") as worker:
        assert (worker.task.min_world_size, worker.task.max_world_size) == (1, 2)
        task = coordinator.get_json("/api/tasks/launched")
        assert (task["world_size"], task["min_world_size"], task["created_by"]) == (2, 1, "worker")
    with pytest.raises(ValueError, match="world size must be N or MIN:MAX"):
        Worker(coordinator.grpc_address, "w1", world_size="3:2")


def test_an_exception_in_a_worker_fails_its_task_and_says_why(coordinator_factory):
    coordinator = coordinator_factory()
    with (
        pytest.raises(RuntimeError, match="diverged"),
        Worker(coordinator.grpc_address, "w0", task_id="boom") as worker,
    ):
        assert worker.rank == 0
        raise RuntimeError("the loss diverged")
    task = coordinator.get_json("/api/tasks/boom")
    assert (task["status"], task["reason"]) == ("failed", "the last worker failed")
    logs = coordinator.get_json("/api/logs?level=warning&worker=w0")["logs"]
    assert any(
        entry["message"] == "worker failed and deregistered"
        and entry["metadata"]["reason"] == "failed: RuntimeError: the loss diverged"
        for entry in logs
    ), logs
    # A worker that finishes cleanly completes its task; Ctrl-C is not a failure either.
    with Worker(coordinator.grpc_address, "w1", task_id="fine"):
        pass
    assert coordinator.get_json("/api/tasks/fine")["status"] == "completed"
    with pytest.raises(KeyboardInterrupt), Worker(coordinator.grpc_address, "w2", task_id="interrupted"):
        raise KeyboardInterrupt
    assert coordinator.get_json("/api/tasks/interrupted")["status"] == "completed"


def test_the_name_of_an_ended_task_starts_a_new_run(coordinator_factory):
    coordinator = coordinator_factory()
    assert coordinator.post_json("/api/tasks", {"name": "nightly", "world_size": 2})["status"] == "pending"
    again = coordinator.post_json("/api/tasks", {"name": "nightly"})
    assert again["error"]["code"] == "already_exists" and "stop it first" in again["error"]["message"]
    assert coordinator.post_json("/api/tasks/nightly/stop")["status"] == "stopped"
    rerun = coordinator.post_json("/api/tasks", {"name": "nightly", "world_size": 4, "epochs": 2})
    assert (rerun["status"], rerun["world_size"], rerun["epochs"], rerun["ended_at"]) == ("pending", 4, 2, None)
    conflict = coordinator.post_json("/api/tasks", {"name": "other", "world_size": 2, "min_world_size": 3})
    assert conflict["error"]["code"] == "failed_precondition"
    assert "min_world_size (3) is larger than world_size (2)" in conflict["error"]["message"]
    assert [task["task_id"] for task in coordinator.get_json("/api/tasks")["tasks"]] == ["nightly"]

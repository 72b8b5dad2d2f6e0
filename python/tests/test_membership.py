"""Membership against the real coordinator binary: ranks, death detection, pushes, restarts."""

from __future__ import annotations

import time

from conftest import DEAD_AFTER, FAST, INTERVAL, free_port, wait_until, workers_by_id


def test_four_workers_get_ranks_0_to_3(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory()
    workers = []
    for index in range(4):
        worker = spawn_worker(coordinator.grpc_address, f"worker-{index}")
        registered = worker.wait_for(lambda event: event["event"] == "registered")
        assert registered["rank"] == index
        workers.append(worker)
    # Everyone learns the final world size by push, and the coordinator agrees.
    for worker in workers:
        worker.wait_for(lambda event: event.get("world_size") == 4)
    listed = workers_by_id(coordinator)
    assert {worker_id: entry["rank"] for worker_id, entry in listed.items()} == {f"worker-{i}": i for i in range(4)}
    assert all(entry["status"] == "healthy" for entry in listed.values())
    wait_until(lambda: all(entry["step"] > 0 for entry in workers_by_id(coordinator).values()))


def test_killed_worker_is_dead_within_timeout_and_survivors_see_it(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory()
    workers = [spawn_worker(coordinator.grpc_address, f"w{i}") for i in range(4)]
    for worker in workers:
        worker.wait_for(lambda event: event.get("world_size") == 4)
    epoch_before = workers[0].latest["membership_epoch"]
    ranks_before = {worker.worker_id: worker.latest["rank"] for worker in workers}

    workers[1].kill()
    killed_at = time.monotonic()
    wait_until(lambda: workers_by_id(coordinator)["w1"]["status"] == "dead", timeout=DEAD_AFTER + 5)
    detected_after = time.monotonic() - killed_at
    assert detected_after <= DEAD_AFTER + INTERVAL + 0.3, f"declared dead after {detected_after:.2f}s"

    for survivor in (workers[0], workers[2], workers[3]):
        view = survivor.wait_for(lambda event: event.get("membership_epoch", 0) > epoch_before, timeout=2)
        assert view["world_size"] == 3
        assert "w1 declared dead" in view["reason"]
    survivors = sorted((workers[i] for i in (0, 2, 3)), key=lambda worker: ranks_before[worker.worker_id])
    assert [worker.latest["rank"] for worker in survivors] == [0, 1, 2], "survivors keep their relative order"
    listed = workers_by_id(coordinator)
    assert listed["w1"]["rank"] is None
    assert sorted(entry["rank"] for entry in listed.values() if entry["rank"] is not None) == [0, 1, 2]


def test_coordinator_kill_9_and_restart_keeps_workers(coordinator_factory, spawn_worker, tmp_path):
    ports = {"grpc_port": free_port(), "http_port": free_port()}
    # Workers reconnect within about a second of the restart (their retry backoff is capped at one second);
    # a 3 s dead timeout keeps this test about the grace, not about a race with the backoff.
    dead_after = 3.0
    args = [*FAST[:-1], f"{dead_after}s"]
    coordinator = coordinator_factory(args=args, **ports)
    workers = [spawn_worker(coordinator.grpc_address, f"w{i}") for i in range(3)]
    for worker in workers:
        worker.wait_for(lambda event: event.get("world_size") == 3)
    before = workers_by_id(coordinator)

    coordinator.kill()
    time.sleep(dead_after + 1)  # longer than the dead timeout: only the restart grace keeps the workers alive
    restarted = coordinator_factory(args=args, **ports)

    # The same workers are listed with the same ranks, and their heartbeats are accepted again (steps are soft
    # state, so a step > 0 proves a heartbeat reached the new process), without re-registering (same registration
    # time, same membership epoch).
    def all_heartbeating():
        listed = workers_by_id(restarted)
        return listed if all(entry["step"] > 0 for entry in listed.values()) else None

    listed = wait_until(all_heartbeating, timeout=10)
    assert {key: entry["rank"] for key, entry in listed.items()} == {
        key: entry["rank"] for key, entry in before.items()
    }
    assert {key: entry["registered_at"] for key, entry in listed.items()} == {
        key: entry["registered_at"] for key, entry in before.items()
    }
    time.sleep(dead_after + 0.5)
    listed = workers_by_id(restarted)
    assert all(entry["status"] == "healthy" for entry in listed.values()), listed
    status = restarted.get_json("/api/status")
    assert status["tasks"] == [{"task_id": "default", "membership_epoch": 3, "world_size": 3}]
    assert all(worker.process.poll() is None for worker in workers)


def test_worker_leaving_gracefully_releases_its_rank_at_once(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory()
    workers = [spawn_worker(coordinator.grpc_address, f"w{i}") for i in range(3)]
    for worker in workers:
        worker.wait_for(lambda event: event.get("world_size") == 3)
    assert workers[0].terminate() == 0
    views = [worker.wait_for(lambda event: "w0 left" in event.get("reason", ""), timeout=2) for worker in workers[1:]]
    assert [view["world_size"] for view in views] == [2, 2]
    assert sorted(view["rank"] for view in views) == [0, 1]
    assert workers_by_id(coordinator)["w0"]["status"] == "left"


def test_tasks_have_their_own_ranks(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory()
    a = [spawn_worker(coordinator.grpc_address, f"a{i}", "--task", "job-a") for i in range(2)]
    b = spawn_worker(coordinator.grpc_address, "b0", "--task", "job-b")
    for worker in a:
        worker.wait_for(lambda event: event.get("world_size") == 2)
    assert b.wait_for(lambda event: event["event"] == "registered")["rank"] == 0
    tasks = {task["task_id"]: task for task in coordinator.get_json("/api/status")["tasks"]}
    assert tasks["job-a"]["world_size"] == 2 and tasks["job-b"]["world_size"] == 1


def test_unary_heartbeats_work_too(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory()
    worker = spawn_worker(coordinator.grpc_address, "unary-0", "--unary")
    worker.wait_for(lambda event: event["event"] == "registered")
    wait_until(lambda: workers_by_id(coordinator)["unary-0"]["step"] > 0)
    time.sleep(DEAD_AFTER + 0.5)
    assert workers_by_id(coordinator)["unary-0"]["status"] == "healthy"
    assert coordinator.get_json("/api/status")["sessions"] == 0

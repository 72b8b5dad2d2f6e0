"""One task's big dataset work must not hold up anyone else (issue #13): heartbeats are judged by when they arrive,
acknowledgements wait only for membership writes, other tasks' registrations do not queue behind one task's ledger
writes, and SIGTERM ends within a bound while such a write is under way. Real coordinator and worker processes on
loopback; the engine is kept busy by joins and leaves into a task reading a dataset of many one-sample shards."""

from __future__ import annotations

import re
import threading
import time

from conftest import workers_by_id
from dtruntime import CoordinatorClient, DatasetRegistry, Worker

# Heartbeats every 300 ms; suspect after 1.5 s of silence (five heartbeats), dead after 4 s.
ARGS = ["--heartbeat-interval", "300ms", "--suspect-after", "1500ms", "--dead-after", "4s"]
# A join or leave moves about half of these shards: tens of thousands of ledger rows to write.
SHARDS = 1 << 18
ROUNDS = 2
# A registration into another task answers within this (it used to wait for the whole ledger write: 10 s and more).
REGISTRATION_BOUND = 2.0
# SIGTERM while a ledger write is under way: the queue writes for at most 3 s more, then the servers drain.
SHUTDOWN_BOUND = 10.0


def test_big_dataset_work_in_one_task_holds_up_no_heartbeat_and_no_other_task(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory(args=ARGS)
    address = coordinator.grpc_address
    calm = [spawn_worker(address, f"calm-{i}", "--task", "calm") for i in range(3)]
    for worker in calm:
        worker.wait_for(lambda event: event["event"] == "registered", timeout=30)
    DatasetRegistry(address).register("big", total_samples=SHARDS, shard_size=1)

    elsewhere: list[float] = []
    with Worker(address, "reader", task_id="busy", host="127.0.0.1", wait_for_world=False) as reader:
        own = reader.epoch_reader("big", 0)
        assert own.take() is not None
        assert own.commit()
        for round in range(ROUNDS):
            registered: dict[str, float] = {}

            def register_elsewhere(round: int = round, registered: dict[str, float] = registered) -> None:
                # While the join's (or the last leave's) ledger rows are being written.
                time.sleep(0.2)
                with CoordinatorClient(address, timeout=60) as client:
                    started = time.monotonic()
                    client.register_worker(f"elsewhere-{round}", "127.0.0.1", 7100 + round, task_id=f"other-{round}")
                    registered["seconds"] = time.monotonic() - started
                    client.deregister_worker(f"elsewhere-{round}")

            thread = threading.Thread(target=register_elsewhere)
            thread.start()
            with Worker(address, f"joiner-{round}", task_id="busy", host="127.0.0.1", wait_for_world=False) as joiner:
                theirs = joiner.epoch_reader("big", 0)
                assert theirs.take() is not None, "the joiner got shards of the reader's"
                assert theirs.commit()
                thread.join(timeout=90)
            # The joiner left: its shards move back to the reader, another big write.
            assert "seconds" in registered, f"round {round}: the registration in another task did not answer"
            elsewhere.append(registered["seconds"])

        workers = workers_by_id(coordinator)
        for worker in calm:
            listed = workers[worker.worker_id]
            assert listed["status"] == "healthy", listed
        assert workers["reader"]["status"] == "healthy"
        # SIGTERM while the last leave's rows are still being written.
        started = time.monotonic()
        status = coordinator.stop(timeout=60)
        shutdown = time.monotonic() - started

    print(f"registrations elsewhere: {elsewhere} s; SIGTERM: {shutdown:.2f} s")
    log = coordinator.log_path.read_text()
    judged = [line for line in log.splitlines() if re.search(r"worker (suspected|declared dead)", line)]
    assert judged == [], "no worker that heartbeated was suspected or declared dead:\n" + "\n".join(judged)
    for worker in calm:
        ranks = {event["rank"] for event in worker.events if "rank" in event}
        assert len(ranks) == 1, f"{worker.worker_id} kept its rank: {worker.events}"
    assert all(seconds < REGISTRATION_BOUND for seconds in elsewhere), f"registrations elsewhere took {elsewhere} s"
    assert status == 0
    assert shutdown < SHUTDOWN_BOUND, f"SIGTERM took {shutdown:.1f} s"

"""Datasets and shards against the real coordinator: every sample exactly once per epoch through deaths, joins and a
coordinator crash."""

from __future__ import annotations

import collections
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from conftest import FAST, free_port, wait_until
from dtruntime import DatasetRegistry, FailedPrecondition, InvalidArgument, NotFound, Worker
from dtruntime.v1 import coordinator_pb2 as pb

TOTAL = 10_000


def spawn_data_worker(coordinator: str, worker_id: str, log: Path, **options: object) -> subprocess.Popen[str]:
    options = {"dataset": "digits", **options}
    extra = [item for key, value in options.items() for item in (f"--{key.replace('_', '-')}", str(value))]
    return subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("data_worker.py")),
            "--coordinator",
            coordinator,
            "--id",
            worker_id,
            "--log",
            str(log),
            *extra,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def logged(logs: list[Path]) -> dict[int, collections.Counter[int]]:
    """Samples committed per epoch, over every worker's log."""
    counts: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for path in logs:
        if path.exists():
            for line in path.read_text().splitlines():
                epoch, sample = map(int, line.split())
                counts[epoch][sample] += 1
    return counts


def assert_exactly_once(counts: dict[int, collections.Counter[int]], epochs: int) -> None:
    for epoch in range(epochs):
        missing = set(range(TOTAL)) - set(counts[epoch])
        repeated = {sample: n for sample, n in counts[epoch].items() if n != 1}
        assert not missing, f"epoch {epoch}: {len(missing)} samples never committed, e.g. {sorted(missing)[:5]}"
        assert not repeated, f"epoch {epoch}: samples committed twice, e.g. {list(repeated.items())[:5]}"
        assert set(counts[epoch]) == set(range(TOTAL))


def test_registry_reference_call_and_bad_specs(coordinator_factory):
    coordinator = coordinator_factory()
    with DatasetRegistry(coordinator.grpc_address) as registry:
        info = registry.register("imagenet", total_samples=1_281_167, shard_size=10_000, shuffle=True)
        assert (info.num_shards, info.created) == (129, True)
        assert info.registered_at.year >= 2025
        assert registry.register("imagenet", total_samples=1_281_167, shard_size=10_000, shuffle=True).created is False
        with pytest.raises(FailedPrecondition, match="already registered"):
            registry.register("imagenet", total_samples=1_281_167, shard_size=5_000, shuffle=True)
        for args, message in [
            (("d", 0, 1), "total_samples must be between 1 and 2^40"),
            (("d", 2**40 + 1, 1), "total_samples must be between 1 and 2^40"),
            (("d", 10, 0), "shard_size must be between 1 and total_samples"),
            (("d", 10, 11), "shard_size must be between 1 and total_samples"),
            (("", 10, 1), "name must be 1-128 characters"),
            (("bad/name", 10, 1), "name must be 1-128 characters"),
        ]:
            with pytest.raises(InvalidArgument, match=re.escape(message)):
                registry.register(*args)
    listed = coordinator.get_json("/api/datasets")["datasets"]
    assert [(d["name"], d["num_shards"], d["shuffle"]) for d in listed] == [("imagenet", 129, True)]


def test_assignments_come_in_bounded_pages_that_add_up_to_the_whole(coordinator_factory):
    coordinator = coordinator_factory()
    DatasetRegistry(coordinator.grpc_address).register("paged", total_samples=5000, shard_size=1, shuffle=True)
    with Worker(coordinator.grpc_address, "solo") as worker:
        client = worker.client
        whole = client.get_shard_assignment("paged", "solo", 0)
        paged = client.get_shard_assignment("paged", "solo", 0, page_size=333)
        assert len(whole.shards) == 5000 and paged.shards == whole.shards
        request = pb.GetShardAssignmentRequest(dataset="paged", worker_id="solo", epoch=0, max_shards=1000)
        first = client._stub.GetShardAssignment(request, metadata=client._secret_metadata("solo"))
        assert len(first.shards) == 1000 and first.next_page_token
        request.page_token = first.next_page_token
        second = client._stub.GetShardAssignment(request, metadata=client._secret_metadata("solo"))
        assert [s.shard_id for s in second.shards] == [s.shard_id for s in whole.shards[1000:2000]]
        for field, value, message in [
            ("page_token", "p-1", "page_token must be empty (first page) or the next_page_token"),
            ("page_token", "garbage", "page_token must be empty (first page) or the next_page_token"),
            ("max_shards", 65_537, "max_shards must be at most 65536"),
        ]:
            bad = pb.GetShardAssignmentRequest(dataset="paged", worker_id="solo", epoch=0, **{field: value})
            with pytest.raises(grpc.RpcError) as refused:
                client._stub.GetShardAssignment(bad, metadata=client._secret_metadata("solo"))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in (refused.value.details() or "")
        assert client.get_shard_assignment("paged", "solo", 0).shards == whole.shards, "bad pages changed nothing"


def test_epoch_iterator_resumes_after_the_committed_samples(coordinator_factory):
    coordinator = coordinator_factory()
    DatasetRegistry(coordinator.grpc_address).register("small", total_samples=1000, shard_size=100, shuffle=True)
    with Worker(coordinator.grpc_address, "solo") as worker:
        with pytest.raises(NotFound, match="not registered"):
            next(worker.epoch_batches("missing", 0))
        first_run = []
        for batch in worker.epoch_batches("small", 0, batch_size=30):
            first_run.append(batch.tolist())
            if len(first_run) == 5:
                break  # batches 1-4 are committed; the fifth was taken but never committed
        rest = [sample for batch in worker.epoch_batches("small", 0, batch_size=30) for sample in batch.tolist()]
        committed = [sample for batch in first_run[:4] for sample in batch]
        assert sorted(committed + rest) == list(range(1000)), "each sample exactly once across both runs"
        assert first_run[4] == rest[: len(first_run[4])], "the uncommitted batch is served again, first"
    (dataset,) = coordinator.get_json("/api/datasets")["datasets"]
    assert dataset["tasks"][0]["epochs"][0]["done_shards"] == 10


def test_commit_progress_commits_the_batch_in_hand_once(coordinator_factory):
    coordinator = coordinator_factory()
    DatasetRegistry(coordinator.grpc_address).register("tiny", total_samples=100, shard_size=100, shuffle=False)
    committed: list[list[int]] = []
    with Worker(coordinator.grpc_address, "solo") as worker:
        batches = worker.epoch_batches(
            "tiny", 0, batch_size=10, on_commit=lambda batch: committed.append(batch.tolist())
        )
        first = next(batches)
        assert committed == []
        worker.commit_progress()  # e.g. right before a checkpoint
        assert committed == [first.tolist()]
        worker.commit_progress()
        assert len(committed) == 1, "committing again is a no-op"
        for _ in range(2):
            next(batches)
        batches.close()  # the third batch was taken but not committed: it is served again
        again = next(worker.epoch_batches("tiny", 0, batch_size=10))
        assert again.tolist() == list(range(20, 30))
        assert committed == [list(range(0, 10)), list(range(10, 20))]


def test_a_reader_reading_ahead_hands_out_every_sample_once_and_commits_oldest_first(coordinator_factory):
    coordinator = coordinator_factory()
    DatasetRegistry(coordinator.grpc_address).register("ahead", total_samples=50, shard_size=20, shuffle=False)
    committed: list[list[int]] = []
    with Worker(coordinator.grpc_address, "reader") as worker:
        reader = worker.epoch_reader(
            "ahead", 0, batch_size=15, on_commit=lambda batch: committed.append(batch.tolist())
        )
        # Ahead across shard ends, as a data loader's prefetching does: shards of 20 give batches of 15 and 5.
        ahead = [reader.take_next() for _ in range(3)]
        assert [batch.tolist() for batch in ahead if batch is not None] == [
            list(range(0, 15)),
            list(range(15, 20)),
            list(range(20, 35)),
        ]
        assert reader.outstanding == 3 and reader.in_hand is not None and reader.in_hand.tolist() == list(range(15))
        assert committed == []
        assert reader.commit() and reader.commit()
        assert committed == [list(range(0, 15)), list(range(15, 20))], "oldest first"
        # A later shard's batch handed out and dropped is served again; the committed ones are not.
        reader.drop()
        assert reader.outstanding == 0
        rest = []
        while (batch := reader.take_next()) is not None:
            rest.append(batch.tolist())
        assert rest == [list(range(20, 35)), list(range(35, 40)), list(range(40, 50))]
        assert not reader.done, "not done while batches are handed out and not committed"
        while reader.outstanding:
            assert reader.commit()
        assert reader.take_next() is None and reader.done
        assert sorted(sample for batch in committed for sample in batch) == list(range(50))


def test_four_workers_two_epochs_with_a_death_and_a_join(coordinator_factory, tmp_path):
    coordinator = coordinator_factory()
    DatasetRegistry(coordinator.grpc_address).register("digits", total_samples=TOTAL, shard_size=100, shuffle=True)
    logs = [tmp_path / f"w{i}.log" for i in range(5)]
    workers = [
        spawn_data_worker(coordinator.grpc_address, f"w{i}", logs[i], **({"stall_after": 400} if i == 1 else {}))
        for i in range(4)
    ]

    # Mid-epoch 0: w1 dies without a goodbye in the middle of a shard, holding a batch it has not committed.
    assert workers[1].stdout is not None
    assert '"stalled"' in workers[1].stdout.readline()
    workers[1].send_signal(signal.SIGKILL)
    workers[1].wait()
    # Later in epoch 0 a fifth worker joins and takes a fair share of the unstarted shards.
    wait_until(lambda: sum(logged(logs)[0].values()) >= TOTAL // 2, timeout=60)
    workers.append(spawn_data_worker(coordinator.grpc_address, "w4", logs[4]))

    for index, process in enumerate(workers):
        if index != 1:
            assert process.wait(timeout=120) == 0
    counts = logged(logs)
    assert_exactly_once(counts, epochs=2)
    assert sum(logged([logs[4]])[0].values()) > 0, "the joiner did some of epoch 0"
    (dataset,) = coordinator.get_json("/api/datasets")["datasets"]
    assert [(e["epoch"], e["done_shards"]) for e in dataset["tasks"][0]["epochs"]] == [(0, 100), (1, 100)]


def test_coordinator_kill_9_mid_epoch_resumes_at_the_same_position(coordinator_factory, tmp_path):
    ports = {"grpc_port": free_port(), "http_port": free_port()}
    args = [*FAST[:-1], "3s"]  # a dead timeout that outlasts the workers' reconnection after the restart
    coordinator = coordinator_factory(args=args, **ports)
    DatasetRegistry(coordinator.grpc_address).register("digits", total_samples=TOTAL, shard_size=100, shuffle=True)
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    workers = [spawn_data_worker(coordinator.grpc_address, f"w{i}", logs[i], epochs=1) for i in range(3)]

    def done_shards(target) -> int:
        datasets = target.get_json("/api/datasets")["datasets"]
        epochs = datasets[0]["tasks"][0]["epochs"] if datasets and datasets[0]["tasks"] else []
        return epochs[0]["done_shards"] if epochs else 0

    wait_until(lambda: done_shards(coordinator) >= 30, timeout=60)
    before = done_shards(coordinator)
    coordinator.kill()
    restarted = coordinator_factory(args=args, **ports)
    after = done_shards(restarted)
    assert before <= after <= before + 3, "the ledger resumes where it was (plus what was committed meanwhile)"
    for process in workers:
        assert process.wait(timeout=120) == 0
    assert_exactly_once(logged(logs), epochs=1)
    assert done_shards(restarted) == 100


def test_a_paused_worker_declared_dead_cannot_commit_its_old_position(coordinator_factory, tmp_path):
    coordinator = coordinator_factory()
    DatasetRegistry(coordinator.grpc_address).register("digits", total_samples=TOTAL, shard_size=100, shuffle=True)
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    workers = [spawn_data_worker(coordinator.grpc_address, f"w{i}", logs[i], epochs=1) for i in range(3)]

    wait_until(lambda: sum(logged([logs[1]])[0].values()) >= 300, timeout=60)
    workers[1].send_signal(signal.SIGSTOP)  # alive but silent: declared dead, its shards move on
    try:
        wait_until(
            lambda: (
                {w["worker_id"]: w["status"] for w in coordinator.get_json("/api/workers")["workers"]}["w1"] == "dead"
            ),
            timeout=10,
        )
        time.sleep(0.5)
    finally:
        workers[1].send_signal(signal.SIGCONT)
    # It wakes up holding a batch of a shard that moved: its commit is refused, it registers again and goes on.
    for process in workers:
        assert process.wait(timeout=120) == 0
    assert_exactly_once(logged(logs), epochs=1)

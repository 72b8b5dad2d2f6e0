"""The distributed checkpoint path of the SDK (``CheckpointManager`` with ``worker=`` or ``coordinator=``), against the
real coordinator: every test starts ``dtr serve`` (the ``coordinator_factory`` fixture, a fresh data dir whose
``checkpoints`` directory is the store) and real ``Worker`` objects in this process, on loopback.

Faults are real ones (a directory in the way of a part, a store missing on this machine, ``kill -9`` of the
coordinator). The only patches wrap the SDK's own calls, to record what it sent (membership epochs, part reports), to
run a membership change at a chosen moment, or to slow a write down; the coordinator's answers are never touched.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from conftest import FAST, free_port, wait_until
from dtruntime import (
    CheckpointAborted,
    CheckpointCorrupted,
    CheckpointManager,
    CheckpointNotFound,
    CheckpointStatus,
    CheckpointStorageError,
    DatasetRegistry,
    FailedPrecondition,
    LocalCoordinator,
    NotFound,
    SavedCheckpoint,
    Unimplemented,
    Worker,
)
from dtruntime.checkpoint_store import LocalStore
from dtruntime.errors import translate
from dtruntime.v1 import coordinator_pb2 as pb
from dtruntime.validation import object_key as validate_key

# Coordinator restarts: worker timeouts long enough that an outage does not get the workers declared dead.
SURVIVES_RESTARTS = ["--heartbeat-interval", "200ms", "--suspect-after", "3s", "--dead-after", "10s"]


# MARK: helpers


def store_root(tmp_path: Path) -> Path:
    """The coordinator's default store: ``<data dir>/checkpoints`` (the factory's data dir is ``tmp_path/data``)."""
    return tmp_path / "data" / "checkpoints"


@contextlib.contextmanager
def joined(coordinator: LocalCoordinator, *worker_ids: str) -> Iterator[list[Worker]]:
    """Real workers of the default task, registered in order (so ranks follow ``worker_ids``), left at the end."""
    with contextlib.ExitStack() as stack:
        workers = [
            stack.enter_context(Worker(coordinator.grpc_address, worker_id, host="127.0.0.1"))
            for worker_id in worker_ids
        ]
        for worker in workers:
            worker.wait_for(lambda view: view.world_size == len(worker_ids), timeout=10)
        yield workers


def save_on_ranks(workers: list[Worker], states: list[Any], step: int, **options: Any) -> dict[str, Any]:
    """Each rank saves from its own thread through its own manager (a rank's report waits for the others, as in a real
    job); the result or the exception, by worker id. The managers are closed (background saves drained) on return."""
    results: dict[str, Any] = {}

    def run(worker: Worker, state: Any) -> None:
        with CheckpointManager(worker=worker) as checkpoints:
            try:
                results[worker.worker_id] = checkpoints.save(state, step=step, **options)
            except Exception as error:
                results[worker.worker_id] = error

    threads = [threading.Thread(target=run, args=pair) for pair in zip(workers, states, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), f"a save hung: {results}"
    return results


def save_in_background(worker: Worker, state: Any, step: int) -> concurrent.futures.Future[SavedCheckpoint]:
    """A blocking save on a thread of its own (a rank that waits in save() while the test goes on)."""
    future: concurrent.futures.Future[SavedCheckpoint] = concurrent.futures.Future()

    def run() -> None:
        try:
            with CheckpointManager(worker=worker) as checkpoints:
                future.set_result(checkpoints.save(state, step=step))
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=run, daemon=True).start()
    return future


def records(coordinator: LocalCoordinator) -> list[dict[str, Any]]:
    """``GET /api/checkpoints``: every attempt the coordinator knows."""
    return coordinator.get_json("/api/checkpoints")["checkpoints"]


def record_of(coordinator: LocalCoordinator, step: int) -> dict[str, Any] | None:
    """The newest attempt of ``step``, if any."""
    matching = [record for record in records(coordinator) if record["step"] == step]
    return max(matching, key=lambda record: record["attempt"]) if matching else None


def watch_saves(
    monkeypatch: pytest.MonkeyPatch, worker: Worker, before_first: Callable[[], None] | None = None
) -> list[int]:
    """Records the membership epoch of each SaveCheckpoint the worker's client sends (to the real coordinator); runs
    ``before_first`` just before the first one goes out, i.e. after save() captured the state and the epoch."""
    sent: list[int] = []
    real = worker._client.save_checkpoint

    def save_checkpoint(worker_id: str, **request: Any) -> Any:
        if not sent and before_first is not None:
            before_first()
        sent.append(request["membership_epoch"])
        return real(worker_id, **request)

    monkeypatch.setattr(worker._client, "save_checkpoint", save_checkpoint)
    return sent


def sha256_of(path: Path) -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


# MARK: saving and loading


def test_two_ranks_commit_one_checkpoint_and_each_loads_its_own_part(coordinator_factory, tmp_path, monkeypatch):
    coordinator = coordinator_factory()
    root = store_root(tmp_path)
    states = [{"shard": np.arange(10.0)}, {"shard": np.arange(10.0, 20.0), "extra": b"rank1"}]
    with joined(coordinator, "w0", "w1") as (w0, w1):
        reports: list[dict[str, Any]] = []
        for worker in (w0, w1):
            real = worker._client.report_checkpoint_part

            def report(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
                reports.append(kwargs)
                return _real(*args, **kwargs)

            monkeypatch.setattr(worker._client, "report_checkpoint_part", report)
        results = save_on_ranks([w0, w1], states, step=10, epoch=2, metrics={"loss": 0.5}, metadata={"git": "abc123"})
        first, second = results["w0"], results["w1"]
        assert isinstance(first, SavedCheckpoint) and isinstance(second, SavedCheckpoint), results
        assert first.checkpoint_id == second.checkpoint_id == "default/step-000000000010-a1"
        assert (first.rank, second.rank, first.world_size, second.world_size) == (0, 1, 2, 2)
        assert first.status == second.status == CheckpointStatus.COMMITTED
        # The manifest the coordinator committed: both parts, and the step, epoch, metrics and metadata the SDK sent.
        manifest = first.manifest
        assert manifest is not None and manifest == second.manifest
        assert [(part.rank, part.object_key) for part in manifest.parts] == [
            (0, first.object_key),
            (1, second.object_key),
        ]
        assert (manifest.step, manifest.epoch, manifest.world_size) == (10, 2, 2)
        assert manifest.metrics == {"loss": 0.5} and manifest.metadata == {"git": "abc123"}
        assert manifest.store.uri == f"file://{root}"
        for saved, part in zip((first, second), manifest.parts, strict=True):
            assert saved.object_key == f"default/step-000000000010-a1/rank-{saved.rank:05d}.part"
            assert saved.path == str(root / saved.object_key)
            assert sha256_of(root / saved.object_key) == (saved.size_bytes, saved.sha256)
            assert (part.size_bytes, part.sha256) == (saved.size_bytes, saved.sha256)
        assert (root / "default/step-000000000010-a1/manifest.json").is_file()
        assert not list(root.rglob("*.tmp-*"))
        # Each rank reported its size and sha256 once, waiting for the outcome, with its write time.
        assert sorted((r["size_bytes"], r["sha256"]) for r in reports) == sorted(
            (s.size_bytes, s.sha256) for s in (first, second)
        )
        assert all(r["wait"] and r["write_seconds"] > 0 and not r.get("failure") for r in reports)
        (record,) = records(coordinator)
        assert record["status"] == "committed" and record["parts"] == 2 and record["write_bytes_per_second"] > 0

        with CheckpointManager(worker=w1) as checkpoints:
            loaded = checkpoints.load_checkpoint(restore_data=True)  # rank 1: its own part
            assert loaded.data_restored and loaded.part.rank == 1 and loaded.manifest.metadata == {"git": "abc123"}
            assert loaded.state["extra"] == b"rank1" and np.array_equal(loaded.state["shard"], np.arange(10.0, 20.0))
            # Once per checkpoint and membership epoch: asking again (any rank) does not rewind the data again.
            assert not checkpoints.load_checkpoint(step=10, restore_data=True).data_restored
            assert checkpoints.load(rank=0)["shard"].tolist() == list(range(10))
        # A worker whose rank has no part (it joined later) starts from rank 0's state.
        with (
            Worker(coordinator.grpc_address, "w2", host="127.0.0.1") as w2,
            CheckpointManager(worker=w2) as checkpoints,
        ):
            assert w2.rank == 2
            loaded = checkpoints.load_checkpoint()
            assert loaded.part.rank == 0 and np.array_equal(loaded.state["shard"], np.arange(10.0))


@pytest.mark.parametrize("snapshot", ["copy", "fork"])
def test_background_saves_commit(coordinator_factory, snapshot):
    coordinator = coordinator_factory()
    states = [{"w": np.ones(1000)}, {"w": np.zeros(1000)}]
    with joined(coordinator, "w0", "w1") as workers:
        futures: dict[str, concurrent.futures.Future[SavedCheckpoint]] = {}

        def run(worker: Worker, state: dict[str, np.ndarray]) -> None:
            with CheckpointManager(worker=worker, snapshot=snapshot) as checkpoints:
                futures[worker.worker_id] = checkpoints.save(state, step=20, blocking=False)
                state["w"] += 100  # the caller may change the state as soon as save() returns

        threads = [threading.Thread(target=run, args=pair) for pair in zip(workers, states, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        # The managers closed (draining their saves) before the threads ended.
        saved = {worker_id: future.result(timeout=0) for worker_id, future in futures.items()}
        assert {s.status for s in saved.values()} == {CheckpointStatus.COMMITTED}
        assert saved["w0"].checkpoint_id == saved["w1"].checkpoint_id
        with CheckpointManager(worker=workers[0]) as checkpoints:
            assert checkpoints.load(rank=0)["w"].tolist() == [1.0] * 1000  # as it was when save() was called
            assert checkpoints.load(rank=1)["w"].tolist() == [0.0] * 1000


def test_a_worker_supplies_the_epoch_and_rank_and_a_stale_epoch_is_retried_when_the_rank_is_unchanged(
    coordinator_factory, monkeypatch
):
    coordinator = coordinator_factory()
    joiners: list[Worker] = []
    with joined(coordinator, "w0", "w1") as (w0, w1), contextlib.ExitStack() as stack:
        epoch = w0.membership_epoch
        sent = watch_saves(monkeypatch, w0)
        results = save_on_ranks([w0, w1], [{"a": 0}, {"a": 1}], step=1)
        assert (results["w0"].rank, results["w1"].rank) == (w0.rank, w1.rank) == (0, 1)
        assert results["w0"].status == CheckpointStatus.COMMITTED
        assert sent == [epoch]

        # A third worker joins between two saves: after w0's save() captured its state (and epoch), before its
        # SaveCheckpoint reaches the coordinator. Its epoch is stale; its rank is unchanged, so the SDK waits for the
        # worker's view to catch up and saves again with the new epoch.
        def join() -> None:
            joiners.append(stack.enter_context(Worker(coordinator.grpc_address, "w2", host="127.0.0.1")))

        sent = watch_saves(monkeypatch, w0, before_first=join)
        first = save_in_background(w0, {"a": 0, "step": 2}, step=2)
        # The checkpoint w0 opened counts the joiner: every one of the three ranks must save step 2.
        opened = wait_until(lambda: record_of(coordinator, 2), timeout=10)
        assert opened["world_size"] == 3 and opened["status"] == "pending"
        others = save_on_ranks([w1, *joiners], [{"a": 1}, {"a": 2}], step=2)
        saved = first.result(timeout=30)
        assert saved.status == CheckpointStatus.COMMITTED and (saved.rank, saved.world_size) == (0, 3)
        assert (
            others["w2"].rank == 2 and others["w1"].checkpoint_id == others["w2"].checkpoint_id == saved.checkpoint_id
        )
        assert sent == [epoch, w0.membership_epoch] and w0.membership_epoch > epoch


def test_a_stale_epoch_is_refused_when_a_lower_rank_left(coordinator_factory, monkeypatch):
    coordinator = coordinator_factory()
    with joined(coordinator, "w0", "w1") as (w0, w1):
        epoch = w1.membership_epoch
        # w0 (rank 0) leaves after w1 captured its state as rank 1: w1 is rank 0 now, and rank 1's state must not be
        # saved as rank 0's part.
        sent = watch_saves(monkeypatch, w1, before_first=w0.close)
        with (
            CheckpointManager(worker=w1) as checkpoints,
            pytest.raises(FailedPrecondition, match="rank changed from 1 to 0 since the state was captured"),
        ):
            checkpoints.save({"a": 1}, step=3)
        assert sent == [epoch], "not saved again under the new rank"
        assert w1.rank == 0 and records(coordinator) == []
        # Without a Worker (coordinator= and worker_id=) no newer view can arrive: the coordinator's answer stands.
        with (
            CheckpointManager(coordinator=coordinator.grpc_address, worker_id="w1", membership_epoch=epoch) as old,
            pytest.raises(FailedPrecondition, match=f"membership_epoch {epoch} is stale"),
        ):
            old.save({"a": 1}, step=3)
        assert records(coordinator) == []


def test_the_data_position_is_taken_when_save_is_called(coordinator_factory, monkeypatch):
    """The batch in hand is committed and the checkpoint opened (recording the data position) before save() returns,
    also for a background save whose write happens later: batches taken after save() are served again on restore."""
    coordinator = coordinator_factory()
    with DatasetRegistry(coordinator.grpc_address) as registry:
        registry.register("digits", total_samples=40, shard_size=10)
    release = threading.Event()
    write_part = LocalStore.write_part

    def slow_write(store: LocalStore, key: str, encoded: Any) -> Any:
        release.wait(10)  # the disk is slow: the write finishes long after save() returned
        return write_part(store, key, encoded)

    monkeypatch.setattr(LocalStore, "write_part", slow_write)
    with joined(coordinator, "w0") as (w0,), CheckpointManager(worker=w0) as checkpoints:
        batches = w0.epoch_batches("digits", 0, batch_size=5)
        trained = np.concatenate([next(batches) for _ in range(3)])  # the third batch is in hand, not committed yet
        future = checkpoints.save({"seen": trained}, step=7, blocking=False)
        assert record_of(coordinator, 7)["status"] == "pending", "opened before save() returned"
        assert not future.done()
        after = np.concatenate([next(batches) for _ in range(2)])  # trained on after the checkpoint
        release.set()
        assert future.result(timeout=10).status == CheckpointStatus.COMMITTED
        batches.close()

        loaded = checkpoints.load_checkpoint(restore_data=True)
        assert loaded.data_restored and np.array_equal(loaded.state["seen"], trained)
        rest = np.concatenate(list(w0.epoch_batches("digits", 0, batch_size=5)))
        assert sorted(rest.tolist()) == sorted(set(range(40)) - set(trained.tolist()))
        assert set(after.tolist()) <= set(rest.tolist()), "batches taken after save() are served again"


# MARK: failures


def test_a_failed_write_is_reported_at_once_and_aborts_every_rank(coordinator_factory, tmp_path):
    # A short deadline: without the SDK's failure report, rank 1 would only hear of the abort when it passes.
    coordinator = coordinator_factory(args=[*FAST, "--checkpoint-timeout", "5s"])
    root = store_root(tmp_path)
    # Rank 0 cannot put its part in place: a directory is in the way of the part's file (a real write failure).
    (root / "default/step-000000000030-a1/rank-00000.part").mkdir(parents=True)
    with joined(coordinator, "w0", "w1") as (w0, w1):
        # Rank 1 writes fine and waits for rank 0; then rank 0 fails.
        waiting = save_in_background(w1, {"x": 1}, step=30)
        wait_until(lambda: (record_of(coordinator, 30) or {}).get("parts") == 1, timeout=10)
        failed_at = time.monotonic()
        with CheckpointManager(worker=w0) as checkpoints, pytest.raises(CheckpointStorageError) as failed:
            checkpoints.save({"x": 0}, step=30)
        assert "rank-00000.part" in str(failed.value) and "Is a directory" in str(failed.value)
        with pytest.raises(CheckpointAborted) as aborted:
            waiting.result(timeout=10)
        assert time.monotonic() - failed_at < 2, "rank 1 hears of the failure at once, not at the deadline"
        assert "rank 0 (worker w0) could not write its part: CheckpointStorageError: cannot write" in str(aborted.value)
        record = record_of(coordinator, 30)
        assert record["status"] == "aborted" and "Is a directory" in record["abort_reason"]
        assert record["checkpoint_id"] == "default/step-000000000030-a1"

        # The step can be saved again: a new attempt.
        shutil.rmtree(root / "default/step-000000000030-a1", ignore_errors=True)
        results = save_on_ranks([w0, w1], [{"x": 0}, {"x": 1}], step=30)
        assert results["w0"].checkpoint_id == "default/step-000000000030-a2"
        assert results["w0"].status == results["w1"].status == CheckpointStatus.COMMITTED


def test_a_store_that_is_not_shared_with_this_machine_is_reported(coordinator_factory, tmp_path):
    elsewhere = tmp_path / "only-on-the-coordinator"
    coordinator = coordinator_factory(args=[*FAST, "--checkpoint-store", str(elsewhere)])
    assert elsewhere.is_dir(), "the coordinator creates its store"
    # On a worker's machine, a local store the coordinator uses but nobody shares (no NFS) is simply not there.
    shutil.rmtree(elsewhere)
    with (
        joined(coordinator, "w0") as (w0,),
        CheckpointManager(worker=w0) as checkpoints,
        pytest.raises(CheckpointStorageError, match="NFS"),
    ):
        checkpoints.save({"x": 1}, step=1)
    assert not elsewhere.exists(), "the SDK must not create the root on a worker"
    record = record_of(coordinator, 1)
    assert record["status"] == "aborted" and "is not a directory on this machine" in record["abort_reason"]


def test_an_object_key_outside_the_store_is_refused():
    """A unit test of the SDK's key check, which runs on every key the coordinator sends before anything is written.
    The real coordinator cannot send such a key (its ``ObjectKey`` applies the same rule to every key it makes), so
    no integration test can reach the refusal."""
    for key in ["../escaped.part", "/etc/passwd", "a/../../b", "a//b", "a/./b", "a\\b", "", "a/b%2e%2e", "x" * 513]:
        with pytest.raises(ValueError, match="object_key must be"):
            validate_key(key)
    assert (
        validate_key("default/step-000000000001-a1/rank-00000.part") == "default/step-000000000001-a1/rank-00000.part"
    )


def test_loading_when_nothing_is_committed_is_not_found(coordinator_factory):
    coordinator = coordinator_factory()
    with (
        joined(coordinator, "w0") as (w0,),
        CheckpointManager(worker=w0) as checkpoints,
        pytest.raises(CheckpointNotFound) as raised,
    ):
        checkpoints.load()
    assert isinstance(raised.value, NotFound) and "no committed checkpoint" in str(raised.value)


def test_a_restore_from_a_non_member_is_refused(coordinator_factory):
    coordinator = coordinator_factory()
    with joined(coordinator, "w0", "w1") as (w0, w1):
        save_on_ranks([w0, w1], [{"x": 0}, {"x": 1}], step=4)
        epoch = w1.membership_epoch
        w1.close()  # w1 left the task
        for worker_id in ("w1", "never-registered"):
            with CheckpointManager(
                coordinator=coordinator.grpc_address, worker_id=worker_id, membership_epoch=epoch, task_id="default"
            ) as checkpoints:
                # Resetting the whole task's data position needs a member; reading the checkpoint does not.
                with pytest.raises(FailedPrecondition, match=r"restore_data .* needs the worker_id of a member"):
                    checkpoints.load(restore_data=True)
                assert checkpoints.load(rank=1) == {"x": 1}
        with CheckpointManager(worker=w0) as checkpoints:
            assert checkpoints.load_checkpoint(restore_data=True).data_restored, "a member still may"


# MARK: coordinator restarts


def test_a_committed_checkpoint_still_loads_verified_after_a_coordinator_restart(coordinator_factory, tmp_path):
    ports = {"grpc_port": free_port(), "http_port": free_port()}
    coordinator = coordinator_factory(args=SURVIVES_RESTARTS, **ports)
    root = store_root(tmp_path)
    with joined(coordinator, "w0", "w1") as (w0, w1):
        saved = save_on_ranks([w0, w1], [{"w": np.arange(100.0)}, {"w": -np.arange(100.0)}], step=10)
        coordinator.kill()  # SIGKILL
        coordinator = coordinator_factory(args=SURVIVES_RESTARTS, **ports)  # same ports, same data dir
        # The job's workers reconnect first (until then this process's channels to the address are in their
        # reconnect backoff and calls fail fast), then it loads.
        wait_until(lambda: coordinator.get_json("/api/status")["sessions"] == 2, timeout=10)
        with CheckpointManager(worker=w1) as checkpoints:
            loaded = checkpoints.load_checkpoint(rank=1)
            assert loaded.manifest.checkpoint_id == saved["w1"].checkpoint_id == "default/step-000000000010-a1"
            assert [(p.size_bytes, p.sha256) for p in loaded.manifest.parts] == [
                (saved[w].size_bytes, saved[w].sha256) for w in ("w0", "w1")
            ]
            assert np.array_equal(loaded.state["w"], -np.arange(100.0))
            # The sha256 is checked: rank 0's part, altered in place (same size), no longer loads.
            part = root / saved["w0"].object_key
            data = bytearray(part.read_bytes())
            data[-1] ^= 0xFF
            part.write_bytes(bytes(data))
            with pytest.raises(CheckpointCorrupted, match="sha256"):
                checkpoints.load(rank=0)


def test_a_rank_waiting_for_its_peer_rides_out_a_coordinator_restart(coordinator_factory, monkeypatch):
    """The coordinator takes the same part report again without effect, so the SDK sends it again across an outage
    (until the checkpoint's deadline) instead of failing a save whose part is already written."""
    ports = {"grpc_port": free_port(), "http_port": free_port()}
    coordinator = coordinator_factory(args=SURVIVES_RESTARTS, **ports)
    with joined(coordinator, "w0", "w1") as (w0, w1):
        reports: list[str] = []
        real = w0._client.report_checkpoint_part

        def report(worker_id: str, checkpoint_id: str, **kwargs: Any) -> Any:
            reports.append(checkpoint_id)
            return real(worker_id, checkpoint_id, **kwargs)

        monkeypatch.setattr(w0._client, "report_checkpoint_part", report)
        waiting = save_in_background(w0, {"w": np.arange(5)}, step=5)
        wait_until(lambda: (record_of(coordinator, 5) or {}).get("parts") == 1, timeout=10)
        assert not waiting.done(), "rank 0 waits for rank 1"
        coordinator.kill()  # SIGKILL while rank 0's report waits
        coordinator = coordinator_factory(args=SURVIVES_RESTARTS, **ports)
        wait_until(lambda: coordinator.get_json("/api/status")["sessions"] == 2, timeout=10)  # both reconnected
        with CheckpointManager(worker=w1) as checkpoints:
            peer = checkpoints.save({"w": np.arange(5, 10)}, step=5)
        saved = waiting.result(timeout=30)
        assert saved.status == peer.status == CheckpointStatus.COMMITTED
        assert saved.checkpoint_id == peer.checkpoint_id == "default/step-000000000005-a1"
        assert saved.manifest is not None and [part.rank for part in saved.manifest.parts] == [0, 1]
        assert len(reports) >= 2 and set(reports) == {saved.checkpoint_id}, "the report was sent again"
        with CheckpointManager(worker=w1) as checkpoints:
            assert checkpoints.load(rank=0)["w"].tolist() == list(range(5))


# MARK: S3


def test_distributed_save_through_s3(coordinator_factory, s3_server, monkeypatch):
    bucket = s3_server.create_bucket("distributed")
    # The coordinator (a child process, which inherits this environment) and the SDK both sign with these.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    coordinator = coordinator_factory(
        args=[
            *FAST,
            "--checkpoint-store",
            f"s3://{bucket}/jobs",
            "--checkpoint-s3-endpoint",
            s3_server.endpoint,
            "--checkpoint-s3-region",
            s3_server.region,
        ]
    )
    with joined(coordinator, "w0", "w1") as (w0, w1):
        results = save_on_ranks([w0, w1], [{"w": np.arange(5)}, {"w": np.arange(5, 10)}], step=4)
        saved = results["w1"]
        assert saved.status == CheckpointStatus.COMMITTED, results
        assert saved.path == f"s3://{bucket}/jobs/default/step-000000000004-a1/rank-00001.part"
        s3 = s3_server.client()
        listed = {item["Key"]: item for item in s3.list_objects_v2(Bucket=bucket, Prefix="jobs/")["Contents"]}
        prefix = "jobs/default/step-000000000004-a1"
        assert set(listed) == {f"{prefix}/rank-00000.part", f"{prefix}/rank-00001.part", f"{prefix}/manifest.json"}
        for result in results.values():
            body = s3.get_object(Bucket=bucket, Key=f"jobs/{result.object_key}")["Body"].read()
            assert (len(body), hashlib.sha256(body).hexdigest()) == (result.size_bytes, result.sha256)
        with CheckpointManager(worker=w1) as checkpoints:
            loaded = checkpoints.load_checkpoint()
            assert loaded.manifest.store.uri == f"s3://{bucket}/jobs" and loaded.part.rank == 1
            assert np.array_equal(loaded.state["w"], np.arange(5, 10))


# MARK: no coordinator needed


def test_an_unimplemented_answer_becomes_unimplemented(coordinator_factory):
    """What an older coordinator without the checkpoint calls answers, translated by the SDK. The real coordinator
    implements them all, so a call it does not have (as an old one lacks SaveCheckpoint) draws the genuine
    UNIMPLEMENTED status from it; the SDK's translation turns that into :class:`Unimplemented`."""
    coordinator = coordinator_factory()
    with grpc.insecure_channel(coordinator.grpc_address) as channel:
        missing = channel.unary_unary(
            "/dtruntime.v1.Coordinator/SaveCheckpointFromTheFuture",
            request_serializer=pb.SaveCheckpointRequest.SerializeToString,
            response_deserializer=pb.SaveCheckpointResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as raised:
            missing(pb.SaveCheckpointRequest(worker_id="w0", step=1), timeout=10)
    error = translate(raised.value, coordinator.grpc_address)
    assert isinstance(error, Unimplemented) and isinstance(error, NotImplementedError)
    assert error.code == grpc.StatusCode.UNIMPLEMENTED


def test_distributed_arguments_that_conflict(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    address = "127.0.0.1:1"  # nothing listens there: these are refused before any call
    cases = [
        ({"store": "./here"}, "the coordinator chooses the checkpoint store"),
        ({"s3_endpoint": "http://x"}, "the coordinator chooses the checkpoint store"),
        ({"keep_last": 3}, "retention of distributed checkpoints is the coordinator's policy"),
    ]
    for options, message in cases:
        with pytest.raises(ValueError, match=message):
            CheckpointManager(coordinator=address, worker_id="w0", membership_epoch=1, **options)
    with pytest.raises(ValueError, match="coordinator= needs worker_id="):
        CheckpointManager(coordinator=address)
    with pytest.raises(ValueError, match="coordinator= needs membership_epoch="):
        CheckpointManager(coordinator=address, worker_id="w0")
    with (
        CheckpointManager(coordinator=address, worker_id="w0", membership_epoch=1) as checkpoints,
        pytest.raises(ValueError, match="standalone only"),
    ):
        checkpoints.checkpoints()
    assert list(tmp_path.iterdir()) == [], "no local store is created in distributed mode"

"""Checkpoints under faults, against the real coordinator and real worker processes: a worker killed mid-save, the
coordinator killed while checkpoints commit, and a job resuming from a checkpoint with its data position."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import DEAD_AFTER, free_port, wait_until
from dtruntime import CheckpointManager, DatasetRegistry

SCRIPT = str(Path(__file__).with_name("checkpoint_worker.py"))


class CheckpointWorker:
    def __init__(self, coordinator: str, worker_id: str, *args: str) -> None:
        command = [sys.executable, SCRIPT, "--coordinator", coordinator, "--id", worker_id, *args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self.worker_id = worker_id

    def next_event(self, kind: str, timeout: float = 60) -> dict[str, Any]:
        """Reads events until one of ``kind`` arrives."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"{self.worker_id} exited ({self.process.wait()}) before a {kind} event")
            event = json.loads(line)
            if event["event"] == kind:
                return event
        raise AssertionError(f"{self.worker_id}: no {kind} event within {timeout}s")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_a_worker_killed_mid_save_aborts_the_checkpoint_and_its_parts_are_deleted(coordinator_factory, tmp_path):
    coordinator = coordinator_factory()
    root = tmp_path / "data" / "checkpoints"
    victim = CheckpointWorker(coordinator.grpc_address, "victim", "--mode", "stall", "--world", "2", "--step", "7")
    saver = CheckpointWorker(coordinator.grpc_address, "saver", "--mode", "save", "--world", "2", "--step", "7")
    try:
        stalled = victim.next_event("stalled")
        assert Path(stalled["temporary"]).exists()
        killed_at = time.time()
        victim.kill()  # SIGKILL mid-write: half a part in a temporary file, never reported
        failed = saver.next_event("failed", timeout=30)
        assert failed["type"] == "CheckpointAborted", failed
        assert "victim" in failed["message"]
        assert failed["at"] - killed_at < DEAD_AFTER + 2, "the saver hears of it once the victim is declared dead"
        assert saver.process.wait(timeout=30) == 0
    finally:
        victim.kill()
        saver.kill()
    (record,) = coordinator.get_json("/api/checkpoints")["checkpoints"]
    assert record["status"] == "aborted" and record["checkpoint_id"] == stalled["checkpoint_id"]
    assert "victim" in record["abort_reason"]
    # Nothing of it is left: the saver's whole part, the victim's temporary file, no manifest.
    wait_until(lambda: files(root) == [], timeout=10)


def test_a_job_resumes_from_a_checkpoint_with_its_data_position(coordinator_factory):
    coordinator = coordinator_factory()
    total = 2000
    DatasetRegistry(coordinator.grpc_address).register("digits", total_samples=total, shard_size=100, shuffle=True)
    first = [
        CheckpointWorker(coordinator.grpc_address, f"t{i}", "--mode", "train", "--world", "2", "--batch-size", "25")
        for i in range(2)
    ]
    for worker in first:
        assert worker.next_event("saved")["samples"] == 5 * 25
        assert worker.next_event("crashing")["samples"] == 8 * 25
        assert worker.process.wait(timeout=30) == 3
    (committed,) = [c for c in coordinator.get_json("/api/checkpoints")["checkpoints"] if c["status"] == "committed"]
    assert committed["step"] == 5

    second = [
        CheckpointWorker(
            coordinator.grpc_address, f"t{i}", "--mode", "train", "--world", "2", "--batch-size", "25", "--resume"
        )
        for i in range(2)
    ]
    seen: list[int] = []
    for worker in second:
        assert worker.next_event("restored")["samples"] == 5 * 25
        seen += worker.next_event("finished", timeout=120)["seen"]
        assert worker.process.wait(timeout=30) == 0
    # What the model saw before the checkpoint, plus what it saw after resuming: every sample exactly once. The
    # batches trained on after the checkpoint (6 to 8, lost in the crash) were served again.
    assert sorted(seen) == list(range(total))


def test_coordinator_killed_while_checkpoints_commit_keeps_them_whole_or_invisible(coordinator_factory, tmp_path):
    ports = {"grpc_port": free_port(), "http_port": free_port()}
    # Worker timeouts long enough that the coordinator's outages do not get the savers declared dead.
    args = ["--heartbeat-interval", "200ms", "--suspect-after", "3s", "--dead-after", "10s"]
    coordinator = coordinator_factory(args=args, **ports)
    savers = [CheckpointWorker(coordinator.grpc_address, f"s{i}", "--mode", "loop", "--world", "2") for i in range(2)]
    rng = random.Random(5)
    try:
        for _ in range(4):
            for saver in savers:
                saver.next_event("saved", timeout=60)
            time.sleep(rng.uniform(0.0, 0.3))
            coordinator.kill()  # SIGKILL, whatever it was doing: writing a manifest, a record, deleting
            coordinator = coordinator_factory(args=args, **ports)
        for saver in savers:
            saver.next_event("saved", timeout=60)
    finally:
        for saver in savers:
            saver.kill()

    root = tmp_path / "data" / "checkpoints"

    def committed() -> dict[str, dict[str, Any]]:
        records = coordinator.get_json("/api/checkpoints")["checkpoints"]
        return {record["checkpoint_id"]: record for record in records if record["status"] == "committed"}

    def manifests() -> set[str]:
        return {str(path.parent.relative_to(root)) for path in root.rglob("manifest.json")}

    # Invisible or whole: once the restarted coordinator has finished the commits a crash interrupted, the manifests
    # in the store are exactly those of the committed checkpoints.
    try:
        wait_until(lambda: manifests() == set(committed()), timeout=15)
    except AssertionError:
        records = coordinator.get_json("/api/checkpoints")["checkpoints"]
        states = {record["checkpoint_id"]: record["status"] for record in records}
        raise AssertionError(
            f"manifests without a commit: {sorted(manifests() - set(committed()))}; commits without a manifest: "
            f"{sorted(set(committed()) - manifests())}; every record's status: {states}"
        ) from None
    assert committed()
    with CheckpointManager(coordinator=coordinator.grpc_address, worker_id="s0", membership_epoch=0) as reader:
        for record in committed().values():
            # Every part is there, with the size and sha256 the manifest records (load verifies both).
            assert reader.load(step=record["step"])["weights"].shape == (50_000,)

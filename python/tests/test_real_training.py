"""Real training end to end: examples/real_training_simple.py under the dtrun launcher, against the real coordinator.

Each run trains the numpy MLP on scikit-learn's digits for real. The example writes, per worker, a JSON summary
(per-epoch metrics, the final held-out accuracy, a hash of the final weights) and a log of every sample it committed,
so the tests check the model (>= 95 % held-out accuracy), the replicas (identical weights on every rank) and the data
(every sample exactly once per epoch) through crashes of workers and of the coordinator, and a stop and a resume.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, free_port, wait_until

EXAMPLE = REPO / "examples" / "real_training_simple.py"
TRAIN_SAMPLES = 1438  # the 80 % training split of the 1,797 digits
EPOCHS = 20


class Job:
    """A ``dtrun`` of the example; its output is kept in a file (it can be long, and nobody must block on a pipe)."""

    def __init__(self, coordinator: str, out: Path, *, nproc: int, task: str, extra: tuple[str, ...] = ()) -> None:
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.log = out / "dtrun.log"
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dtruntime.run",
                    "--nproc",
                    str(nproc),
                    "--coordinator",
                    coordinator,
                    "--task",
                    task,
                    "--backoff",
                    "0.5",
                    str(EXAMPLE),
                    "--epochs",
                    str(EPOCHS),
                    "--output-dir",
                    str(out),
                    *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait(self, timeout: float = 300.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=60)
            raise AssertionError(f"the job did not finish within {timeout} s:\n{self.output()}") from None

    def output(self) -> str:
        return self.log.read_text()

    def summaries(self) -> list[dict[str, Any]]:
        return [json.loads(path.read_text()) for path in sorted(self.out.glob("*.json"))]

    def committed(self) -> dict[int, collections.Counter[int]]:
        """Per epoch, how many times each sample was committed, over every worker's log (restarts included)."""
        counts: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        for path in self.out.glob("*.samples"):
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2:  # a worker killed mid-write may leave a partial last line
                    counts[int(parts[0])][int(parts[1])] += 1
        return counts

    def children(self) -> list[int]:
        """The pids of dtrun's children (the training processes)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.process.pid:
                    pids.append(int(entry.name))
        return pids

    def reached_epoch(self, epoch: int) -> bool:
        return any(counts for e, counts in self.committed().items() if e >= epoch)


@pytest.fixture
def jobs() -> Any:
    started: list[Job] = []

    def start(*args: Any, **kwargs: Any) -> Job:
        job = Job(*args, **kwargs)
        started.append(job)
        return job

    yield start
    for job in started:
        if job.process.poll() is None:
            job.process.send_signal(signal.SIGKILL)
            for pid in job.children():
                os.killpg(pid, signal.SIGKILL)
            job.process.wait()


def assert_trained(job: Job, workers: int) -> list[dict[str, Any]]:
    """The job finished, every rank ended with the same weights and >= 95 % held-out accuracy."""
    summaries = job.summaries()
    assert len(summaries) == workers, job.output()
    assert {summary["weights"] for summary in summaries} == {summaries[0]["weights"]}, "every rank, the same weights"
    for summary in summaries:
        assert summary["final_accuracy"] >= 0.95, summary
        assert summary["epoch"] == EPOCHS and not summary["stopped"]
    return summaries


def assert_exactly_once(job: Job, epochs: range) -> None:
    """No sample committed twice in any epoch (and, where nothing was lost in a crash, every sample once)."""
    committed = job.committed()
    for epoch in epochs:
        twice = {sample: count for sample, count in committed[epoch].items() if count > 1}
        assert not twice, f"epoch {epoch}: samples committed more than once: {twice}"
        assert set(committed[epoch]) <= set(range(TRAIN_SAMPLES))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_the_example_trains_to_95_percent_with_identical_weights_on_every_rank(
    coordinator_factory, jobs, tmp_path, workers
):
    coordinator = coordinator_factory()
    job = jobs(coordinator.grpc_address, tmp_path / "run", nproc=workers, task=f"digits-{workers}")
    assert job.wait() == 0, job.output()
    summaries = assert_trained(job, workers)
    # Nobody died or joined: every epoch ran with every worker, and no rank ever had to re-synchronise.
    assert {record["world_size"] for summary in summaries for record in summary["epochs"]} == {workers}
    assert all(summary["resyncs"] == 0 for summary in summaries)
    # Every sample exactly once in every epoch: the ledger's promise, with the ranks reading different amounts.
    for epoch, counts in job.committed().items():
        assert counts == collections.Counter(range(TRAIN_SAMPLES)), f"epoch {epoch}"
    assert sorted(job.committed()) == list(range(EPOCHS))
    # The accuracy climbs: the first epoch is well below the last.
    history = summaries[0]["epochs"]
    assert history[0]["accuracy"] < history[-1]["accuracy"]
    task = coordinator.get_json(f"/api/tasks/digits-{workers}")
    assert (task["status"], task["world_size"], task["created_by"]) == ("completed", workers, "worker"), "dtrun's size"


def test_a_worker_killed_mid_epoch_is_restarted_and_rejoins_while_the_others_train(coordinator_factory, jobs, tmp_path):
    coordinator = coordinator_factory()
    job = jobs(coordinator.grpc_address, tmp_path / "run", nproc=4, task="crash", extra=("--step-delay", "0.02"))
    wait_until(lambda: job.reached_epoch(4), timeout=120)
    victim = job.children()[1]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    # The launcher starts it again under the same worker id; the coordinator sees a new incarnation join.
    wait_until(lambda: len(job.children()) == 4 and victim not in job.children(), timeout=30)
    assert job.wait() == 0, job.output()
    assert time.monotonic() - killed_at > 0
    summaries = assert_trained(job, 4)
    rejoined = [summary for summary in summaries if summary["resumed_from"] is None and summary["joined_running"]]
    assert len(rejoined) == 1, "the restarted worker took the running job's state from the others"
    assert all(summary["resyncs"] >= 1 for summary in summaries if summary is not rejoined[0])
    assert_exactly_once(job, range(EPOCHS))
    assert "restart" in job.output().lower()


def test_the_coordinator_killed_mid_training_and_restarted_the_workers_reconnect_and_finish(
    coordinator_factory, jobs, tmp_path
):
    ports = {"grpc_port": free_port(), "http_port": free_port()}
    coordinator = coordinator_factory(**ports)
    job = jobs(coordinator.grpc_address, tmp_path / "run", nproc=4, task="outage", extra=("--step-delay", "0.02"))
    wait_until(lambda: job.reached_epoch(4), timeout=120)
    coordinator.kill()
    time.sleep(1.0)
    coordinator_factory(**ports)  # the same data dir: the membership, ledgers and checkpoints are restored
    assert job.wait() == 0, job.output()
    assert_trained(job, 4)
    assert_exactly_once(job, range(EPOCHS))


def test_a_stopped_job_exits_cleanly_and_a_rerun_resumes_model_and_data_from_its_checkpoint(
    coordinator_factory, jobs, tmp_path
):
    coordinator = coordinator_factory(args=[])  # the default heartbeat interval: 1 s
    first = jobs(coordinator.grpc_address, tmp_path / "first", nproc=2, task="resume", extra=("--step-delay", "0.02"))
    wait_until(lambda: first.reached_epoch(5), timeout=120)
    requested = time.monotonic()
    assert coordinator.post_json("/api/tasks/resume/stop")["status"] == "stopping"
    assert first.wait(timeout=30) == 0, first.output()
    assert time.monotonic() - requested < 2.0 + 1.0, "every worker exits within 2 heartbeat intervals (+ dtrun's exit)"
    stopped = first.summaries()
    assert all(summary["stopped"] for summary in stopped)
    assert wait_until(lambda: coordinator.get_json("/api/tasks/resume")["status"] == "stopped")

    # The latest checkpoint is the last epoch the stopped job finished.
    latest = next(
        checkpoint
        for checkpoint in coordinator.get_json("/api/checkpoints")["checkpoints"]
        if checkpoint["task_id"] == "resume" and checkpoint["status"] == "committed"
    )
    second = jobs(coordinator.grpc_address, tmp_path / "second", nproc=2, task="resume")
    assert second.wait() == 0, second.output()
    resumed = assert_trained(second, 2)
    for summary in resumed:
        assert summary["resumed_from"] == latest["checkpoint_id"]
        assert summary["resumed_step"] == latest["step"] and summary["resumed_epoch"] == latest["epoch"]
        assert summary["resumed_accuracy"] == summary["checkpoint_accuracy"] == latest["metrics"]["accuracy"]
        assert summary["epochs"][0]["epoch"] == latest["epoch"], "training went on at the checkpoint's epoch"
    # The data position came back too: the resumed epochs committed every sample exactly once.
    for epoch in range(latest["epoch"], EPOCHS):
        assert second.committed()[epoch] == collections.Counter(range(TRAIN_SAMPLES)), f"epoch {epoch}"

"""PyTorch through dtruntime, end to end: real torch (gloo on the CPU), real processes under the dtrun launcher, the
real coordinator binary.

Run with an interpreter that has torch (``make torch-test`` uses .venv-torch). The training processes write, per
worker, a JSON summary and a log of every sample they committed, so the tests check the model (accuracy, identical
weights on every rank), the process group (re-formed after a kill within the dead timeout + 2 s, the restarted process
back in it, the same gradients as a fresh group's) and the data (every sample once per epoch, through the kill and
through a stop and a resume from a checkpoint).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import DEAD_AFTER, REPO, free_port, wait_until
from dtruntime import CheckpointManager, DatasetRegistry, Worker
from dtruntime.torch import ElasticTrainer, LedgerBatchSampler, RendezvousError, init_process_group

EXAMPLE = REPO / "examples" / "torch_ddp.py"
TESTS = Path(__file__).parent
WORKER = TESTS / "torch_worker.py"
TRAIN_SAMPLES = 1438  # the 80 % training split of the 1,797 digits


class Job:
    """A ``dtrun`` of a training script; its output goes to a file (nobody must block on a pipe)."""

    def __init__(self, coordinator: str, out: Path, script: Path, *args: str, nproc: int, task: str, **flags: str):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.log = out / "dtrun.log"
        launcher = [f"--{name.replace('_', '-')}={value}" for name, value in flags.items()]
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dtruntime.run",
                    f"--nproc={nproc}",
                    f"--coordinator={coordinator}",
                    f"--task={task}",
                    *launcher,
                    str(script),
                    "--output-dir",
                    str(out),
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait(self, timeout: float = 240.0) -> int:
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

    def commits(self) -> list[tuple[int, int, int]]:
        """(epoch, sample, step) of every committed sample, over every worker's log (restarts included); the step is
        -1 where the script does not log it."""
        rows = []
        for path in self.out.glob("*.samples"):
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) in (2, 3):  # a process killed mid-write may leave a partial last line
                    rows.append((int(parts[0]), int(parts[1]), int(parts[2]) if len(parts) == 3 else -1))
        return rows

    def committed(self) -> dict[int, collections.Counter[int]]:
        """Per epoch, how many times each sample was committed."""
        counts: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        for epoch, sample, _ in self.commits():
            counts[epoch][sample] += 1
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
            for pid in job.children():
                os.killpg(pid, signal.SIGKILL)
            job.process.send_signal(signal.SIGKILL)
            job.process.wait()


def assert_no_sample_twice(job: Job) -> dict[int, collections.Counter[int]]:
    committed = job.committed()
    for epoch, counts in committed.items():
        twice = {sample: count for sample, count in counts.items() if count > 1}
        assert not twice, f"epoch {epoch}: samples committed more than once: {twice}"
        assert set(counts) <= set(range(TRAIN_SAMPLES))
    return committed


# MARK: rendezvous


def test_init_process_group_forms_torchs_group_with_the_coordinators_ranks(coordinator_factory):
    coordinator = coordinator_factory()
    env = {**os.environ, "DTR_COORDINATOR": coordinator.grpc_address, "DTR_TASK": "rendezvous", "DTR_WORLD_SIZE": "3"}
    processes = [
        subprocess.Popen(
            [sys.executable, str(TESTS / "torch_rendezvous_worker.py")],
            env={**env, "DTR_WORKER_ID": f"rdv-{index}"},
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(3)
    ]
    reports = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(report["group_rank"] for report in reports) == [0, 1, 2]
    for report in reports:
        # torch's rank is the coordinator's, at one membership epoch for all; the allreduce ran over the group.
        assert report["group_rank"] == report["coordinator_rank"] == report["torch_rank"]
        assert report["torch_world_size"] == 3 and report["rank_sum"] == 0 + 1 + 2
        assert report["membership_epoch"] == reports[0]["membership_epoch"]
        assert report["store"] == reports[0]["store"] and report["store"].startswith("127.0.0.1:")
        assert report["connections"] == 2, "a gloo connection to each peer, remembered for abort()"


def test_a_rendezvous_that_a_member_never_joins_times_out_naming_it(coordinator_factory):
    coordinator = coordinator_factory()
    absent = Worker(coordinator.grpc_address, "absent-worker", task_id="absent", world_size=(1, 2)).start()
    present = Worker(coordinator.grpc_address, "present-worker", task_id="absent", world_size=(1, 2)).start()
    try:
        assert present.world_size == 2
        started = time.monotonic()
        with pytest.raises(RendezvousError) as raised:
            init_process_group(present, rendezvous_timeout=2.0)
        assert time.monotonic() - started < 30
        assert raised.value.missing_ranks == [absent.rank]
        assert raised.value.missing_workers == ["absent-worker"]
        assert f"ranks [{absent.rank}] (absent-worker) did not arrive" in str(raised.value)
        assert not torch.distributed.is_initialized(), "nothing was formed"
    finally:
        present.close()
        absent.close()


def test_one_process_trains_every_sample_once_and_misuse_gets_errors_that_say_what_to_do(coordinator_factory):
    coordinator = coordinator_factory()
    DatasetRegistry(coordinator.grpc_address).register("solo-data", total_samples=10, shard_size=4)
    committed: list[int] = []
    with Worker(coordinator.grpc_address, "solo-worker", task_id="solo") as worker:
        torch.manual_seed(0)
        model = torch.nn.Linear(1, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        sampler = LedgerBatchSampler(
            worker, "solo-data", batch_size=3, on_commit=lambda b: committed.extend(b.tolist())
        )
        with pytest.raises(RuntimeError, match="use `with ElasticTrainer"):
            _ = ElasticTrainer(worker, model, optimizer).ddp
        with ElasticTrainer(worker, model, optimizer) as trainer:
            assert trainer.group is not None and (trainer.group.rank, trainer.group.world_size) == (0, 1)
            with pytest.raises(RuntimeError, match="already initialised"):
                ElasticTrainer(worker, model, optimizer).start()
            with pytest.raises(TypeError, match="batch_sampler=LedgerBatchSampler"):
                next(iter(trainer.steps([[0, 1]])))
            before = model.weight.detach().clone()
            sizes = []
            for _ in trainer.epochs(1):
                for step in trainer.steps(sampler):  # the sampler itself: its batches of indices are the data
                    with step:
                        x = torch.tensor(step.data, dtype=torch.float32).unsqueeze(1)
                        step.model(x).square().mean().backward()
                    sizes.append(step.size)
            # Shards of 4 in batches of 3: 3+1, 3+1, 2; each batch committed once, after its step.
            assert sorted(sizes) == [1, 1, 2, 3, 3] and trainer.global_step == 5 and trainer.epoch == 1
            assert sorted(committed) == list(range(10))
            assert not torch.equal(before, model.weight), "the optimizer stepped"
            with pytest.raises(RuntimeError, match="pass checkpoints="):
                trainer.save()
        assert not torch.distributed.is_initialized(), "leaving the trainer destroys the process group"


# MARK: checkpoints


def _model() -> torch.nn.Module:
    """A model with what state_dicts hold: conv and linear weights, BatchNorm's buffers, float64 and bfloat16."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(64, 3)
    )
    model.add_module("wide", torch.nn.Linear(2, 2).to(torch.float64))
    model.add_module("brain", torch.nn.Linear(2, 2).to(torch.bfloat16))
    return model


def _train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    images, pair = torch.randn(5, 1, 6, 6, generator=generator), torch.randn(1, 2, generator=generator)
    optimizer.zero_grad()
    loss = (
        model[:4](images).square().mean() + model.wide(pair.double()).sum() + model.brain(pair.bfloat16()).float().sum()
    )
    loss.backward()
    optimizer.step()


def _bytes(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().reshape(-1).contiguous().view(torch.uint8)


def _assert_identical(saved: Any, restored: Any, path: str = "state") -> None:
    assert type(saved) is type(restored), path
    if isinstance(saved, torch.Tensor):
        assert (saved.dtype, saved.shape, saved.requires_grad) == (
            restored.dtype,
            restored.shape,
            restored.requires_grad,
        )
        assert torch.equal(_bytes(saved), _bytes(restored)), f"{path}: not the same bits"
    elif isinstance(saved, dict):
        assert list(saved) == list(restored), path
        for key in saved:
            _assert_identical(saved[key], restored[key], f"{path}.{key}")
    elif isinstance(saved, (list, tuple)):
        assert len(saved) == len(restored), path
        for index, (a, b) in enumerate(zip(saved, restored, strict=True)):
            _assert_identical(a, b, f"{path}[{index}]")
    else:
        assert saved == restored, path


def test_checkpoints_round_trip_model_and_optimizer_state_dicts_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for seed in range(3):
        _train_step(model, optimizer, seed)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 1, "global_step": 3}
    with CheckpointManager(tmp_path / "store") as checkpoints:
        checkpoints.save(state, step=3, blocking=False)  # the background path: the state is copied first
        checkpoints.wait()
        loaded = checkpoints.load()
    _assert_identical(state, loaded)
    assert loaded["model"]._metadata == state["model"]._metadata, "torch's per-module versions come back"
    # A fresh model and optimizer loaded from it go on training exactly like the originals.
    twin = _model()
    twin.load_state_dict(loaded["model"])
    twin_optimizer = torch.optim.Adam(twin.parameters(), lr=0.01)
    twin_optimizer.load_state_dict(loaded["optimizer"])
    _train_step(model, optimizer, 7)
    _train_step(twin, twin_optimizer, 7)
    _assert_identical(model.state_dict(), twin.state_dict())
    _assert_identical(optimizer.state_dict(), twin_optimizer.state_dict())


# MARK: training


def test_the_example_trains_ddp_with_four_processes_to_95_percent(coordinator_factory, jobs, tmp_path):
    coordinator = coordinator_factory()
    job = jobs(coordinator.grpc_address, tmp_path / "run", EXAMPLE, nproc=4, task="digits-torch")
    assert job.wait() == 0, job.output()
    summaries = job.summaries()
    assert len(summaries) == 4, job.output()
    assert {summary["weights"] for summary in summaries} == {summaries[0]["weights"]}, "every rank, the same weights"
    for summary in summaries:
        assert summary["final_accuracy"] >= 0.95, summary["epochs"]
        assert summary["epoch"] == 12 and not summary["stopped"]
        # Nobody died or joined: one formation of four ranks, every epoch with four workers.
        assert [(f["reason"], f["world_size"]) for f in summary["formations"]] == [("start", 4)]
        assert {record["world_size"] for record in summary["epochs"]} == {4}
    assert sorted(summary["rank"] for summary in summaries) == [0, 1, 2, 3]
    print("held-out accuracy per rank:", [round(summary["final_accuracy"], 4) for summary in summaries])
    # Every sample exactly once in every epoch, with the ranks reading different amounts through their DataLoaders.
    committed = job.committed()
    assert sorted(committed) == list(range(12))
    for epoch, counts in committed.items():
        assert counts == collections.Counter(range(TRAIN_SAMPLES)), f"epoch {epoch}"
    history = summaries[0]["epochs"]
    assert history[0]["accuracy"] < history[-1]["accuracy"]
    assert coordinator.get_json("/api/tasks/digits-torch")["status"] == "completed"


def test_a_killed_process_the_others_re_form_without_it_and_it_rejoins(coordinator_factory, jobs, tmp_path):
    coordinator = coordinator_factory()
    out = tmp_path / "run"
    # MIN 3: the survivors go on without the killed process; dtrun restarts it after about a second. The job trains
    # until the test has seen what it needs, then the test stops it.
    job = jobs(
        coordinator.grpc_address,
        out,
        WORKER,
        "--epochs=100",
        "--step-delay=0.03",
        "--uneven",  # each rank its own batch size: the ranks' batches differ in size at every step
        nproc=4,
        task="kill",
        world_size="3:4",
        backoff="1",
    )
    wait_until(lambda: any(epoch >= 1 for epoch, _, _ in job.commits()), timeout=120, interval=0.02)

    def events() -> dict[str, list[dict[str, Any]]]:
        """Each worker id's formations as its processes logged them (a restart appends to the same file)."""
        seen: dict[str, list[dict[str, Any]]] = {}
        for path in out.glob("*.events"):
            seen[path.stem] = []
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):  # a line the killed process did not finish
                    seen[path.stem].append(json.loads(line))
        return seen

    victim = job.children()[1]
    environment = dict(item.split("=", 1) for item in Path(f"/proc/{victim}/environ").read_text().split("\0") if item)
    victim_id = environment["DTR_WORKER_ID"]
    logged_before = len(events().get(victim_id, []))
    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    killed_epoch = max(epoch for epoch, _, _ in job.commits())

    def back_to_four() -> bool:
        """The restarted process (the victim's worker id) trains, and every survivor with it."""
        seen = events()
        restarted = seen.get(victim_id, [])[logged_before:]
        return bool(restarted) and all(
            synced
            and synced[-1]["world_size"] == 4
            and synced[-1]["membership_epoch"] >= restarted[0]["membership_epoch"]
            for worker_id, synced in seen.items()
            if worker_id != victim_id
        )

    wait_until(back_to_four, timeout=120, interval=0.1)
    # The epoch of the kill finishes, and the next one too, with four ranks.
    wait_until(lambda: max(epoch for epoch, _, _ in job.commits()) >= killed_epoch + 2, timeout=120, interval=0.1)
    assert coordinator.post_json("/api/tasks/kill/stop")["status"] == "stopping"
    assert job.wait() == 0, job.output()
    summaries = job.summaries()
    assert len(summaries) == 4, job.output()
    assert all(summary["stopped"] for summary in summaries)
    restarted = [summary for summary in summaries if summary["worker_id"] == victim_id]
    survivors = [summary for summary in summaries if summary["worker_id"] != victim_id]
    assert len(restarted) == 1 and restarted[0]["pid"] != victim and restarted[0]["joined_running"]

    # The survivors re-formed as three, all at one membership epoch, within the dead timeout + 2 s of the kill.
    # (With MIN 3 the job may also have started as three, before the fourth process registered.)
    three = [
        next(f for f in summary["formations"] if f["world_size"] == 3 and f["finished"] > killed_at)
        for summary in survivors
    ]
    assert len({f["membership_epoch"] for f in three}) == 1
    assert len({f["global_step"] for f in three}) == 1
    reformed_after = max(f["finished"] for f in three) - killed_at
    print(f"re-formed as 3 ranks {reformed_after:.2f} s after the kill (dead timeout {DEAD_AFTER} s)")
    assert reformed_after <= DEAD_AFTER + 2.0, three
    # ... with identical parameters (and optimizer state) on every survivor.
    synced = [
        next(s for s in summary["synced"] if s["membership_epoch"] == three[0]["membership_epoch"])
        for summary in survivors
    ]
    assert len({s["state"] for s in synced}) == 1

    # The restarted process took the running job's state at a later step, and the world was 4 again.
    joined = restarted[0]["formations"][0]
    assert joined["world_size"] == 4 and joined["global_step"] > three[0]["global_step"]
    for summary in survivors:
        assert any(
            f["membership_epoch"] == joined["membership_epoch"] and f["world_size"] == 4 for f in summary["formations"]
        )
    assert {summary["world_size"] for summary in summaries} == {4}
    assert {summary["state"] for summary in summaries} == {summaries[0]["state"]}, "every rank ends the same"
    assert len({summary["global_step"] for summary in summaries}) == 1

    # The data: no sample twice in any epoch; every finished epoch has every sample, but the epoch of the kill may
    # miss the last batch of the killed process (committed, then killed before it was logged).
    committed = assert_no_sample_twice(job)
    last = summaries[0]["epoch"]  # the epoch the stop interrupted
    assert sorted(committed)[:last] == list(range(last)) and last >= killed_epoch + 2
    short = {
        epoch: TRAIN_SAMPLES - len(committed[epoch]) for epoch in range(last) if len(committed[epoch]) < TRAIN_SAMPLES
    }
    assert set(short) <= {killed_epoch} and all(missing <= 32 for missing in short.values()), f"missing: {short}"

    # One step after re-forming gives the gradients of a fresh 3-process group (plain torch.distributed and DDP)
    # started from the same state with the same batches.
    epoch = three[0]["membership_epoch"]
    recordings = sorted(
        (torch.load(out / f"{summary['worker_id']}-e{epoch}.pt") for summary in survivors),
        key=lambda recorded: recorded["formation"]["rank"],
    )
    assert [recorded["formation"]["rank"] for recorded in recordings] == [0, 1, 2]
    for recorded in recordings[1:]:
        _assert_identical(recordings[0]["model"], recorded["model"])
    port = free_port()
    references = [
        subprocess.Popen(
            [
                sys.executable,
                str(TESTS / "torch_reference.py"),
                f"--rank={rank}",
                "--world-size=3",
                f"--port={port}",
                f"--recorded={out / (survivor_id(recordings[rank], survivors) + f'-e{epoch}.pt')}",
                f"--output={tmp_path / f'reference-{rank}.pt'}",
            ]
        )
        for rank in range(3)
    ]
    assert [process.wait(timeout=120) for process in references] == [0, 0, 0]
    for rank, recorded in enumerate(recordings):
        reference = torch.load(tmp_path / f"reference-{rank}.pt")
        for name, gradient in recorded["grads"].items():
            assert torch.allclose(gradient, reference[name], rtol=1e-5, atol=1e-7), (name, gradient, reference[name])
    sizes = [recorded["size"] for recorded in recordings]
    print("batch sizes in the compared step:", sizes)
    assert len(set(sizes)) > 1, "uneven batches: the gradients are weighted by each rank's share"


def survivor_id(recorded: dict[str, Any], survivors: list[dict[str, Any]]) -> str:
    """The worker id whose recording this is (by its rank at the recorded membership epoch)."""
    formation = recorded["formation"]
    for summary in survivors:
        for f in summary["formations"]:
            if f["membership_epoch"] == formation["membership_epoch"] and f["rank"] == formation["rank"]:
                return str(summary["worker_id"])
    raise AssertionError(
        f"no survivor was rank {formation['rank']} at membership epoch {formation['membership_epoch']}"
    )


def test_a_stopped_job_restarted_resumes_model_optimizer_and_data_from_its_last_checkpoint(
    coordinator_factory, jobs, tmp_path
):
    coordinator = coordinator_factory()
    extra = ("--epochs=5", "--checkpoint-every=5", "--loader-workers=2")
    first = jobs(
        coordinator.grpc_address, tmp_path / "first", WORKER, *extra, "--step-delay=0.03", nproc=2, task="resume"
    )
    wait_until(lambda: any(epoch >= 2 for epoch, _, _ in first.commits()), timeout=120, interval=0.02)
    assert coordinator.post_json("/api/tasks/resume/stop")["status"] == "stopping"
    assert first.wait(timeout=60) == 0, first.output()
    stopped = first.summaries()
    assert len(stopped) == 2 and all(summary["stopped"] for summary in stopped)
    assert stopped[0]["epoch"] < 5
    assert wait_until(lambda: coordinator.get_json("/api/tasks/resume")["status"] == "stopped")

    latest = next(
        checkpoint
        for checkpoint in coordinator.get_json("/api/checkpoints")["checkpoints"]
        if checkpoint["task_id"] == "resume" and checkpoint["status"] == "committed"
    )
    step, epoch = latest["step"], latest["epoch"]
    # The stop may land right after a checkpoint (then nothing was trained after it); the checks below hold either way.
    assert step % 5 == 0 and step <= stopped[0]["global_step"], "the last checkpoint is one the job reached"
    saved_state = {summary["saved"][str(step)] for summary in stopped}
    assert len(saved_state) == 1

    second = jobs(coordinator.grpc_address, tmp_path / "second", WORKER, *extra, nproc=2, task="resume")
    assert second.wait() == 0, second.output()
    resumed = second.summaries()
    assert len(resumed) == 2
    for summary in resumed:
        assert summary["resumed"]["checkpoint_id"] == latest["checkpoint_id"]
        assert (summary["resumed"]["step"], summary["resumed"]["epoch"]) == (step, epoch)
        # Model and optimizer (Adam's moments and step counts) exactly as they were saved.
        assert {summary["resumed"]["state"]} == saved_state
        assert summary["epoch"] == 5 and not summary["stopped"]
    assert {summary["state"] for summary in resumed} == {resumed[0]["state"]}

    # The data position: in the checkpoint's epoch, what the first run committed up to the checkpoint's step and what
    # the second run committed make every sample exactly once (what the first run trained after the checkpoint is
    # read again); the later epochs are whole.
    before = collections.Counter(sample for e, sample, at in first.commits() if e == epoch and at <= step)
    after = second.committed()
    assert before + after[epoch] == collections.Counter(range(TRAIN_SAMPLES))
    assert 0 < sum(before.values()) < TRAIN_SAMPLES, "the checkpoint was taken mid-epoch"
    for later in range(epoch + 1, 5):
        assert after[later] == collections.Counter(range(TRAIN_SAMPLES)), f"epoch {later}"
    assert sorted(after) == list(range(epoch, 5))

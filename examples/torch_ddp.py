"""PyTorch DistributedDataParallel through dtruntime: a small CNN learns scikit-learn's handwritten digits.

Four processes under the launcher (which restarts a process that dies while the others keep training)::

    dtrun --nproc 4 examples/torch_ddp.py

What each process does:

- joins the job (``Worker``) and forms torch's process group (gloo, CPU) from the coordinator's ranks
  (:class:`dtruntime.torch.ElasticTrainer`); DDP averages the gradients;
- reads its share of each epoch from the coordinator's shard ledger through a ``DataLoader`` whose batch sampler is a
  :class:`dtruntime.torch.LedgerBatchSampler` (every sample exactly once per epoch across the job);
- when a process dies or a restarted one comes back, the others re-form the process group at the new membership epoch
  and go on from the last completed step; the restarted one takes the current model and optimizer state from them;
- at each epoch's end, evaluates on the held-out split, reports to the coordinator (dashboard, ``GET /api/workers``)
  and saves a checkpoint in the background (model, optimizer, LR schedule, epoch, step; the coordinator records the
  data position); a job started again resumes from it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dtruntime import CheckpointManager, DatasetRegistry, DtrError, Worker
from dtruntime.torch import ElasticTrainer, LedgerBatchSampler

# The same split and dataset spec as examples/real_training_simple.py (a dataset name is registered once).
DATASET = "digits-train"
TEST_FRACTION = 0.2
SHARD_SIZE = 32


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The 1,797 8x8 digits as 1x8x8 images in [0, 1], split into train and held-out test sets (the same on every
    process)."""
    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(images))
    test = order[: int(len(images) * TEST_FRACTION)]
    train = order[len(test) :]
    x = torch.from_numpy((images / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(labels.astype(np.int64))
    return x[train], y[train], x[test], y[test]


class Net(nn.Module):
    """Two 3x3 convolutions, a 2x2 max-pool and two linear layers: about 40,000 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = (model(x).argmax(dim=1) == y).float().mean().item()
    model.train()
    return float(correct)


def fingerprint(model: nn.Module) -> str:
    """A hash of the weights: identical on every rank."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coordinator", help="gRPC address (default: $DTR_COORDINATOR, else localhost:50051)")
    parser.add_argument("--task", help="the job to join (default: $DTR_TASK, else 'digits-torch')")
    parser.add_argument("--epochs", type=int, help="epochs to train (default: the task's epochs, else 12)")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per rank and step (default 32)")
    parser.add_argument("--lr", type=float, help="Adam's learning rate (default: the task's config lr, else 0.01)")
    parser.add_argument("--loader-workers", type=int, default=1, help="DataLoader worker processes (default 1)")
    parser.add_argument("--step-delay", type=float, default=0.0, help="extra seconds per step (slows demos down)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write <worker id>.json (per-epoch metrics, the process group's formations, the final weights' hash) and "
        "append 'epoch sample' lines for every committed sample to <worker id>.samples",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Several processes share few cores: one thread each (the loader's workers use one too).
    torch.set_num_threads(1)
    worker = Worker(args.coordinator, task_id=args.task or os.environ.get("DTR_TASK") or "digits-torch")
    with worker, CheckpointManager(worker=worker) as checkpoints:
        summary = train(worker, checkpoints, args)
    if args.output_dir:
        (args.output_dir / f"{worker.worker_id}.json").write_text(json.dumps(summary))
    return 0


def train(worker: Worker, checkpoints: CheckpointManager, args: argparse.Namespace) -> dict[str, Any]:
    """Trains until the task's epochs are done (or the task is stopped); returns what happened."""
    x_train, y_train, x_test, y_test = digits()
    DatasetRegistry(args.coordinator).register(
        DATASET, total_samples=len(x_train), shard_size=SHARD_SIZE, shuffle=True, seed=0
    )
    epochs = args.epochs or worker.task.epochs or 12
    lr = float(args.lr or worker.task.config.get("lr", 0.01))
    torch.manual_seed(0)  # every rank starts from the same weights (rank 0's are broadcast anyway)
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)

    samples = args.output_dir / f"{worker.worker_id}.samples" if args.output_dir else None
    with samples.open("a") if samples else _no_log() as sample_log:
        sampler = LedgerBatchSampler(worker, DATASET, args.batch_size)
        sampler.on_commit = _sample_logger(sample_log, sampler)
        loader = DataLoader(
            TensorDataset(x_train, y_train),
            batch_sampler=sampler,
            num_workers=args.loader_workers,
            persistent_workers=args.loader_workers > 0,
        )
        trainer = ElasticTrainer(worker, model, optimizer, checkpoints=checkpoints, state={"schedule": schedule})
        with trainer:
            loaded = trainer.resumed_from
            progress = _Progress(lambda: not args.quiet and membership(trainer, worker)[0] == 0)
            if loaded is not None:
                progress.line(
                    f"resumed from checkpoint {loaded.manifest.checkpoint_id}: epoch {trainer.epoch}, step "
                    f"{trainer.global_step}, held-out accuracy {accuracy(model, x_test, y_test):.4f}"
                )
            history: list[dict[str, Any]] = []
            latest: dict[str, float] = {}
            for epoch in trainer.epochs(epochs):
                started, first_step = time.monotonic(), trainer.global_step
                losses = train_epoch(trainer, loader, worker, latest, args.step_delay)
                if trainer.stopped:
                    break
                schedule.step()
                elapsed = time.monotonic() - started
                record = {
                    "epoch": epoch,
                    "step": trainer.global_step,
                    "loss": float(np.mean(losses)) if losses else None,
                    "accuracy": accuracy(model, x_test, y_test),
                    "steps_per_second": (trainer.global_step - first_step) / elapsed if elapsed > 0 else 0.0,
                    "world_size": membership(trainer, worker)[1],
                }
                history.append(record)
                latest.update(accuracy=record["accuracy"], steps_per_second=record["steps_per_second"])
                worker.report(step=trainer.global_step, flush=True, **latest)
                # In the background: the next epoch trains while each rank's part is written and committed.
                trainer.save(metrics={"accuracy": record["accuracy"]})
                progress.epoch(record)
            try:
                checkpoints.wait()
            except DtrError as error:  # a save a membership change aborted: the next epoch's is whole
                logging.getLogger("dtruntime").warning("a background checkpoint did not commit: %s", error)
            final = accuracy(model, x_test, y_test)
            progress.line(
                f"{'stopped' if trainer.stopped else 'done'}: {trainer.epoch} epochs, step {trainer.global_step}, "
                f"held-out accuracy {final:.4f} (weights {fingerprint(model)}, {trainer.reforms} re-formings)"
            )
            return {
                "worker_id": worker.worker_id,
                "rank": membership(trainer, worker)[0],
                "world_size": membership(trainer, worker)[1],
                "epochs": history,
                "final_accuracy": final,
                "global_step": trainer.global_step,
                "epoch": trainer.epoch,
                "stopped": trainer.stopped,
                "joined_running": trainer.joined_running_job,
                "formations": [vars(formation) for formation in trainer.formations],
                "resumed_from": None if loaded is None else loaded.manifest.checkpoint_id,
                "resumed_step": None if loaded is None else loaded.state["global_step"],
                "weights": fingerprint(model),
            }


def train_epoch(
    trainer: ElasticTrainer, loader: DataLoader, worker: Worker, latest: dict[str, float], step_delay: float
) -> list[float]:
    """One epoch of steps; returns the loss of each (averaged over the ranks)."""
    losses = []
    for step in trainer.steps(loader):
        with step:  # a peer dying in here: the ranks re-form and the step is redone (step.completed stays False)
            x, y = step.data  # a stand-in sample when this rank has nothing to read: its gradients get weight 0
            loss = F.cross_entropy(step.model(x), y)
            loss.backward()
            mean_loss = step.mean(loss.item())
        if step.completed:
            losses.append(mean_loss)
            latest["loss"] = mean_loss
            worker.report(step=trainer.global_step, **latest)
        time.sleep(step_delay)
    return losses


@contextlib.contextmanager
def _no_log() -> Iterator[None]:
    yield None


def _sample_logger(log: TextIO | None, sampler: LedgerBatchSampler) -> Callable[[np.ndarray], None] | None:
    """Appends each committed batch's samples to the log (the exactly-once evidence), or None without a log."""
    if log is None:
        return None

    def commit(batch: np.ndarray) -> None:
        log.write("".join(f"{sampler.epoch} {sample}\n" for sample in batch.tolist()))
        log.flush()

    return commit


def membership(trainer: ElasticTrainer, worker: Worker) -> tuple[int | None, int]:
    """This process's rank and the world size in the current process group (the coordinator's while it re-forms, and
    after a stop)."""
    group = trainer.group
    return (group.rank, group.world_size) if group is not None else (worker.rank, worker.world_size)


class _Progress:
    """One line per epoch on rank 0 (whichever process is rank 0 now)."""

    def __init__(self, enabled: Callable[[], bool]) -> None:
        self._enabled = enabled

    def line(self, text: str) -> None:
        if self._enabled():
            print(text, flush=True)

    def epoch(self, record: dict[str, Any]) -> None:
        loss = "-" if record["loss"] is None else f"{record['loss']:.4f}"
        self.line(
            f"epoch {record['epoch']}: loss {loss}, held-out accuracy {record['accuracy']:.4f}, "
            f"{record['steps_per_second']:.1f} steps/s, {record['world_size']} workers"
        )


if __name__ == "__main__":
    sys.exit(main())

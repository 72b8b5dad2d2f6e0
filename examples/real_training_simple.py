"""Real data-parallel training through dtruntime: a small numpy MLP learns scikit-learn's handwritten digits.

Run it alone against a coordinator (``dtr serve``; ``$DTR_COORDINATOR``, else ``localhost:50051``)::

    python examples/real_training_simple.py

or as four workers under the launcher, which restarts a worker that dies while the others keep training::

    dtrun --nproc 4 examples/real_training_simple.py

What each worker does:

- registers the training split as a dataset (the digits ship inside scikit-learn: nothing is downloaded) and reads
  its share of each epoch from the coordinator's shard ledger, every sample exactly once per epoch across the job;
- computes gradients on its batch and averages them with the other workers' (:class:`dtruntime.DataParallel`, over
  the coordinator's allreduce), so every rank holds the same weights; ranks step together, and when a worker dies or
  a restarted one joins, the ranks re-synchronise from the most advanced replica and go on;
- at each epoch's end (every rank finishes the epoch at the same step), evaluates on the held-out test split, reports
  loss, accuracy and steps/s (shown by ``GET /api/workers`` and the dashboard), and saves a checkpoint in the
  background (``CheckpointManager(worker=worker)``, a two-phase commit of one part per rank);
- on start, resumes the model *and* the data position from the latest checkpoint, when there is one.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from sklearn.datasets import load_digits
from tqdm import tqdm

from dtruntime import CheckpointManager, DataParallel, DatasetRegistry, DtrError, Worker

DATASET = "digits-train"
TEST_FRACTION = 0.2
HIDDEN = 64


# MARK: the model: a 64-64-10 multilayer perceptron in numpy


def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 1,797 8x8 digits, scaled to [0, 1], split into train and held-out test sets (the same on every worker)."""
    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(images))
    test = order[: int(len(images) * TEST_FRACTION)]
    train = order[len(test) :]
    x = (images / 16.0).astype(np.float32)
    return x[train], labels[train], x[test], labels[test]


def initial_parameters(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w1": (rng.standard_normal((64, HIDDEN)) * np.sqrt(2 / 64)).astype(np.float32),
        "b1": np.zeros(HIDDEN, np.float32),
        "w2": (rng.standard_normal((HIDDEN, 10)) * np.sqrt(1 / HIDDEN)).astype(np.float32),
        "b2": np.zeros(10, np.float32),
    }


def forward(params: dict[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hidden = np.maximum(x @ params["w1"] + params["b1"], 0)
    logits = hidden @ params["w2"] + params["b2"]
    return hidden, logits


def loss_and_gradients(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Mean cross-entropy over the batch and its gradients; zeros for an empty batch (a rank with nothing to read
    at a step still takes part in it)."""
    if len(x) == 0:
        return {"loss": 0.0, **{name: np.zeros_like(value) for name, value in params.items()}}
    hidden, logits = forward(params, x)
    logits = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    rows = np.arange(len(x))
    loss = float(-np.log(probabilities[rows, y] + 1e-12).mean())
    delta = probabilities
    delta[rows, y] -= 1
    delta /= len(x)
    back = (delta @ params["w2"].T) * (hidden > 0)
    return {"loss": loss, "w1": x.T @ back, "b1": back.sum(0), "w2": hidden.T @ delta, "b2": delta.sum(0)}


def accuracy(params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return float((forward(params, x)[1].argmax(axis=1) == y).mean())


def fingerprint(params: dict[str, np.ndarray]) -> str:
    """A hash of the weights: identical on every rank of a data-parallel job."""
    digest = hashlib.sha256()
    for name in sorted(params):
        digest.update(params[name].tobytes())
    return digest.hexdigest()[:16]


# MARK: training


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coordinator", help="gRPC address (default: $DTR_COORDINATOR, else localhost:50051)")
    parser.add_argument("--task", help="the job to join (default: $DTR_TASK, else 'digits')")
    parser.add_argument("--epochs", type=int, help="epochs to train (default: the task's epochs, else 20)")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per rank and step (default 32)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the task's config lr, else 0.5)")
    parser.add_argument("--shard-size", type=int, default=32, help="samples per shard of the dataset (default 32)")
    parser.add_argument("--step-delay", type=float, default=0.0, help="extra seconds per step (slows demos down)")
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write <worker id>.json (per-epoch metrics, the final weights' hash) and append 'epoch sample' lines for "
        "every committed sample to <worker id>.samples",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    worker = Worker(args.coordinator, task_id=args.task or os.environ.get("DTR_TASK") or "digits")
    with worker, CheckpointManager(worker=worker) as checkpoints:
        summary = train(worker, checkpoints, args)
    if args.output_dir:
        (args.output_dir / f"{worker.worker_id}.json").write_text(json.dumps(summary))
    return 0


def train(worker: Worker, checkpoints: CheckpointManager, args: argparse.Namespace) -> dict[str, Any]:
    """Trains until the task's epochs are done (or the task is stopped); returns what happened, for --summary."""
    x_train, y_train, x_test, y_test = digits()
    DatasetRegistry(args.coordinator).register(
        DATASET, total_samples=len(x_train), shard_size=args.shard_size, shuffle=True, seed=0
    )
    epochs = args.epochs or worker.task.epochs or 20
    base_lr = float(args.lr or worker.task.config.get("lr", 0.5))
    params = initial_parameters()
    dp = DataParallel(worker, params)
    loaded = dp.resume(checkpoints)
    progress = _Progress(worker.rank == 0 and not args.quiet, total=epochs, start=dp.epoch)
    if loaded is not None:
        progress.line(
            f"resumed from checkpoint {loaded.manifest.checkpoint_id}: epoch {dp.epoch}, step {dp.global_step}, "
            f"held-out accuracy {accuracy(params, x_test, y_test):.4f}"
        )

    lr = base_lr

    def apply(average: dict[str, Any]) -> None:
        """Plain SGD with the job's averaged gradients (the same update on every rank)."""
        for name, value in params.items():
            np.subtract(value, lr * average[name], out=value)

    history: list[dict[str, Any]] = []
    # Reports replace the previous metrics: each carries the latest of every one (the dashboard charts them).
    latest: dict[str, float] = {}
    samples = args.output_dir / f"{worker.worker_id}.samples" if args.output_dir else None
    with samples.open("a") if samples else _no_log() as sample_log:
        for epoch in dp.epochs(epochs):
            lr = base_lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))  # cosine decay: a steady end
            started, first_step, losses = time.monotonic(), dp.global_step, []
            for batch in dp.batches(DATASET, args.batch_size, on_commit=_sample_logger(sample_log, epoch)):
                average = dp.update(
                    loss_and_gradients(params, x_train[batch], y_train[batch]), weight=len(batch), apply=apply
                )
                if average is not None:
                    losses.append(average["loss"])
                    latest["loss"] = average["loss"]
                    worker.report(step=dp.global_step, **latest)
                time.sleep(args.step_delay)
            if dp.stopped:
                break
            elapsed = time.monotonic() - started
            record = {
                "epoch": epoch,
                "step": dp.global_step,
                "loss": float(np.mean(losses)) if losses else None,
                "accuracy": accuracy(params, x_test, y_test),
                "steps_per_second": (dp.global_step - first_step) / elapsed if elapsed > 0 else 0.0,
                "world_size": worker.world_size,
            }
            history.append(record)
            latest.update(accuracy=record["accuracy"], steps_per_second=record["steps_per_second"])
            worker.report(step=dp.global_step, flush=True, **latest)
            # In the background: the next epoch trains while this rank's part is written and the commit happens.
            checkpoints.save(
                dp.state_dict(),
                step=dp.global_step,
                epoch=dp.epoch,
                metrics={"accuracy": record["accuracy"]},
                blocking=False,
            )
            progress.epoch(record)
    try:
        checkpoints.wait()
    except DtrError as error:  # a save a membership change aborted: the next epoch's is whole
        logging.getLogger("dtruntime").warning("a background checkpoint did not commit: %s", error)
    final = accuracy(params, x_test, y_test)
    progress.close(
        f"{'stopped' if dp.stopped else 'done'}: {dp.epoch} epochs, step {dp.global_step}, held-out accuracy "
        f"{final:.4f} (weights {fingerprint(params)})"
    )
    return {
        "worker_id": worker.worker_id,
        "rank": worker.rank,
        "world_size": worker.world_size,
        "epochs": history,
        "final_accuracy": final,
        "global_step": dp.global_step,
        "epoch": dp.epoch,
        "stopped": dp.stopped,
        "resyncs": dp.resyncs,
        "joined_running": dp.joined_running_job,
        "resumed_from": None if loaded is None else loaded.manifest.checkpoint_id,
        "resumed_epoch": None if loaded is None else loaded.state["epoch"],
        "resumed_step": None if loaded is None else loaded.state["global_step"],
        "resumed_accuracy": None if loaded is None else accuracy(dict(loaded.state["state"]), x_test, y_test),
        "checkpoint_accuracy": None if loaded is None else loaded.manifest.metrics.get("accuracy"),
        "weights": fingerprint(params),
    }


@contextlib.contextmanager
def _no_log() -> Iterator[None]:
    yield None


def _sample_logger(log: TextIO | None, epoch: int) -> Callable[[np.ndarray], None] | None:
    """Appends each committed batch's samples to the log (the exactly-once evidence), or None without a log."""
    if log is None:
        return None

    def commit(batch: np.ndarray) -> None:
        log.write("".join(f"{epoch} {sample}\n" for sample in batch.tolist()))
        log.flush()

    return commit


class _Progress:
    """A tqdm bar of epochs on rank 0 when attached to a terminal, else one plain line per epoch."""

    def __init__(self, enabled: bool, *, total: int, start: int) -> None:
        self._enabled = enabled
        self._bar = None
        if enabled and sys.stdout.isatty():
            self._bar = tqdm(total=total, initial=start, unit="epoch", desc="training")

    def line(self, text: str) -> None:
        if not self._enabled:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def epoch(self, record: dict[str, Any]) -> None:
        if not self._enabled:
            return
        loss = "-" if record["loss"] is None else f"{record['loss']:.4f}"
        if self._bar is not None:
            self._bar.set_postfix(loss=loss, acc=f"{record['accuracy']:.3f}")
            self._bar.update(1)
        else:
            print(
                f"epoch {record['epoch']}: loss {loss}, held-out accuracy {record['accuracy']:.4f}, "
                f"{record['steps_per_second']:.1f} steps/s, {record['world_size']} workers",
                flush=True,
            )

    def close(self, text: str) -> None:
        if self._bar is not None:
            self._bar.close()
        if self._enabled:
            print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())

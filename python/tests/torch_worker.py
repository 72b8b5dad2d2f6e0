"""A training process for test_torch.py: examples/torch_ddp.py's model and data, trained with dtruntime.torch the way
the example does, and instrumented.

It writes, into --output-dir, per worker id: ``<id>.json`` (formations of the process group, the weights right after
each, checkpoints saved with a hash of model and optimizer state, what it resumed from, the final accuracy and
weights), ``<id>.samples`` (``epoch sample step`` for every committed sample), ``<id>.events`` (a JSON line when the
first step after each formation starts), and, for the first completed step after
each formation, ``<id>-e<membership epoch>.pt``: the state before the step, the step's sample indices and weights,
and the gradients DDP averaged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from torch_ddp import DATASET, SHARD_SIZE, Net, accuracy, digits, membership

from dtruntime import CheckpointManager, DatasetRegistry, DtrError, Worker
from dtruntime.torch import ElasticTrainer, LedgerBatchSampler


def state_hash(trainer: ElasticTrainer) -> str:
    """A hash of the model's and the optimizer's state, bit for bit."""
    digest = hashlib.sha256()
    model, optimizer = trainer.module.state_dict(), trainer.optimizer.state_dict()
    for name, tensor in sorted(model.items()):
        digest.update(name.encode() + tensor.numpy().tobytes())
    for index, entry in sorted(optimizer["state"].items()):
        for key, value in sorted(entry.items()):
            data = value.numpy().tobytes() if isinstance(value, torch.Tensor) else repr(value).encode()
            digest.update(f"{index}.{key}".encode() + data)
    digest.update(repr(optimizer["param_groups"]).encode())
    return digest.hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--uneven", action="store_true", help="batches of 8 * (1 + local rank) samples instead")
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--loader-workers", type=int, default=1)
    parser.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: none)")
    parser.add_argument("--output-dir", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    out: Path = args.output_dir
    worker = Worker()
    with worker, CheckpointManager(worker=worker) as checkpoints:
        x_train, y_train, x_test, y_test = digits()
        DatasetRegistry().register(DATASET, total_samples=len(x_train), shard_size=SHARD_SIZE, shuffle=True, seed=0)
        torch.manual_seed(0)
        model = Net()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
        summary: dict[str, Any] = {"worker_id": worker.worker_id, "synced": [], "saved": {}, "dumped": []}
        with (out / f"{worker.worker_id}.samples").open("a") as sample_log:
            batch_size = 8 * (1 + int(os.environ.get("DTR_LOCAL_RANK", "0"))) if args.uneven else args.batch_size
            sampler = LedgerBatchSampler(worker, DATASET, batch_size)
            loader = DataLoader(
                TensorDataset(x_train, y_train),
                batch_sampler=sampler,
                num_workers=args.loader_workers,
                persistent_workers=args.loader_workers > 0,
            )
            with ElasticTrainer(worker, model, optimizer, checkpoints=checkpoints) as trainer:

                def log_commit(batch: np.ndarray) -> None:
                    # Committed right after the optimizer applied the step: global_step counts it.
                    step = trainer.global_step
                    sample_log.write("".join(f"{sampler.epoch} {sample} {step}\n" for sample in batch.tolist()))
                    sample_log.flush()

                sampler.on_commit = log_commit
                if trainer.resumed_from is not None:
                    summary["resumed"] = {
                        "checkpoint_id": trainer.resumed_from.manifest.checkpoint_id,
                        "step": trainer.global_step,
                        "epoch": trainer.epoch,
                        "state": state_hash(trainer),
                    }
                seen = 0
                for _ in trainer.epochs(args.epochs):
                    for step in trainer.steps(loader):
                        dump = None
                        if seen != len(trainer.formations):
                            seen = len(trainer.formations)
                            formation = trainer.formations[-1]
                            synced = {
                                "membership_epoch": formation.membership_epoch,
                                "world_size": formation.world_size,
                                "global_step": trainer.global_step,
                                "joined_running": trainer.joined_running_job,
                                "state": state_hash(trainer),
                            }
                            summary["synced"].append(synced)
                            with (out / f"{worker.worker_id}.events").open("a") as events:
                                events.write(json.dumps(synced) + "\n")
                            dump = {
                                "formation": vars(formation),
                                "model": {k: v.clone() for k, v in model.state_dict().items()},
                                "indices": step.indices.tolist(),
                                "data_indices": step.indices.tolist() if step.size else [sampler.stand_in],
                                "size": step.size,
                                "total": step.total,
                                "step": step.number,
                            }
                        with step:
                            x, y = step.data
                            F.cross_entropy(step.model(x), y).backward()
                            grads = {name: p.grad.clone() for name, p in model.named_parameters()}
                        if step.completed and dump is not None:
                            dump["grads"] = grads
                            epoch = dump["formation"]["membership_epoch"]
                            torch.save(dump, out / f"{worker.worker_id}-e{epoch}.pt")
                            summary["dumped"].append(epoch)
                        if (
                            step.completed
                            and args.checkpoint_every
                            and trainer.global_step % args.checkpoint_every == 0
                        ):
                            summary["saved"][str(trainer.global_step)] = state_hash(trainer)
                            trainer.save()  # in the background
                        time.sleep(args.step_delay)
                try:
                    checkpoints.wait()
                except DtrError as error:
                    logging.getLogger("dtruntime").warning("a background checkpoint did not commit: %s", error)
                summary.update(
                    rank=membership(trainer, worker)[0],
                    world_size=membership(trainer, worker)[1],
                    final_accuracy=accuracy(model, x_test, y_test),
                    epoch=trainer.epoch,
                    global_step=trainer.global_step,
                    stopped=trainer.stopped,
                    joined_running=trainer.joined_running_job,
                    formations=[vars(formation) for formation in trainer.formations],
                    state=state_hash(trainer),
                    pid=os.getpid(),
                )
    (out / f"{worker.worker_id}.json").write_text(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A worker for the checkpoint fault tests; prints what happened as JSON lines.

Modes:
- ``stall``: opens the checkpoint of a step, writes half of its part to a temporary file, says so and hangs (the test
  kills it with SIGKILL: a worker dying mid-save);
- ``save``: saves one step through the SDK and prints the outcome;
- ``loop``: saves steps 1, 2, ... through the SDK until killed, retrying a step across coordinator outages;
- ``train``: trains over a dataset (a sample's "training" is recording it), saves the samples seen at
  ``--save-at``, then crashes after ``--crash-at`` batches; with ``--resume`` it loads the latest checkpoint, restores
  the data position, and trains to the end of the epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from dtruntime import BarrierAborted, CheckpointManager, CoordinatorUnavailable, DtrError, FailedPrecondition, Worker


def say(**event: object) -> None:
    print(json.dumps(event), flush=True)


def stall(worker: Worker, step: int) -> None:
    ticket = worker._client.save_checkpoint(worker.worker_id, membership_epoch=worker.membership_epoch, step=step)
    path = Path(urlparse(ticket.store.uri).path) / ticket.object_key
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp-deadbeef")
    with temporary.open("wb") as part:
        part.write(b"\0" * 4096)
        part.flush()
        os.fsync(part.fileno())
    say(event="stalled", checkpoint_id=ticket.checkpoint_id, temporary=str(temporary))
    time.sleep(3600)


def save(worker: Worker, step: int) -> None:
    with CheckpointManager(worker=worker) as manager:
        try:
            saved = manager.save({"weights": np.full(1024, float(step))}, step=step)
            say(event="saved", step=step, checkpoint_id=saved.checkpoint_id)
        except DtrError as error:
            say(event="failed", type=type(error).__name__, message=str(error), at=time.time())


def loop(worker: Worker) -> None:
    with CheckpointManager(worker=worker) as manager:
        step = 1
        while True:
            state = {"weights": np.arange(50_000, dtype=np.float32) * step, "rank": np.int64(worker.rank or 0)}
            try:
                saved = manager.save(state, step=step)
                say(event="saved", step=step, checkpoint_id=saved.checkpoint_id)
                step += 1
            except CoordinatorUnavailable:
                time.sleep(0.2)  # the coordinator restarts: save the same step again
            except DtrError as error:
                say(event="retry", step=step, type=type(error).__name__, message=str(error))
                time.sleep(0.2)


def train(worker: Worker, args: argparse.Namespace) -> None:
    manager = CheckpointManager(worker=worker)
    seen: list[int] = []
    if args.resume:
        # One rank resets the task's data position, then everyone starts together: a restore after a rank has started
        # would rewind it.
        loaded = manager.load(restore_data=worker.rank == 0)
        seen = [int(sample) for sample in loaded["seen"]]
        # A job restarted within the dead timeout rejoins one process at a time (each replaces its predecessor, a
        # membership change): a barrier opened meanwhile aborts, or refuses an arrival from before the change (its
        # view was stale); it is met again once the view has caught up.
        while True:
            try:
                worker.barrier("restored", timeout=60)
                break
            except (BarrierAborted, FailedPrecondition):
                time.sleep(0.1)
        say(event="restored", rank=worker.rank, samples=len(seen))
    for batches, batch in enumerate(worker.epoch_batches(args.dataset, 0, batch_size=args.batch_size), start=1):
        seen.extend(int(sample) for sample in batch)  # "training" on the batch
        if not args.resume and batches == args.save_at:
            manager.save({"seen": np.array(seen, dtype=np.int64)}, step=args.save_at)
            say(event="saved", rank=worker.rank, samples=len(seen))
        if not args.resume and batches == args.crash_at:
            say(event="crashing", rank=worker.rank, samples=len(seen))
            os._exit(3)  # a crash: nothing after this batch is committed, nothing deregisters
    manager.close()
    say(event="finished", rank=worker.rank, seen=seen)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--mode", choices=["stall", "save", "loop", "train"], required=True)
    parser.add_argument("--world", type=int, default=1)
    parser.add_argument("--step", type=int, default=1)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--save-at", type=int, default=5)
    parser.add_argument("--crash-at", type=int, default=8)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    with Worker(args.coordinator, args.id, host="127.0.0.1") as worker:
        worker.wait_for(lambda view: view.world_size == args.world, timeout=60)
        say(event="ready", rank=worker.rank)
        if args.mode == "stall":
            stall(worker, args.step)
        elif args.mode == "save":
            save(worker, args.step)
        elif args.mode == "loop":
            loop(worker)
        else:
            train(worker, args)
    sys.exit(0)


if __name__ == "__main__":
    main()

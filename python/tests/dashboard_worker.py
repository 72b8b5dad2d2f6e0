"""A training-like worker for the dashboard's browser tests: joins a task and reports a falling ``loss`` and a rising
``accuracy`` every step; optionally reads a dataset's shards, or meets its task at a barrier and saves a checkpoint
every few steps. Prints JSON lines like ``worker_process.py`` (``registered``, ``exited``)."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import signal
import threading

import numpy as np

from dtruntime import CheckpointManager, Worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--step-seconds", type=float, default=0.05)
    parser.add_argument("--dataset", help="read this dataset's shards, a batch per step, epoch after epoch")
    parser.add_argument("--sync-every", type=int, default=0, help="every N steps: a barrier, then a checkpoint")
    parser.add_argument("--world-size", type=int, default=1, help="with --sync-every: wait for this many members")
    args = parser.parse_args()

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    seed = sum(args.id.encode())
    with Worker(args.coordinator, args.id, task_id=args.task, host="127.0.0.1") as worker:
        print(json.dumps({"event": "registered", "rank": worker.rank}), flush=True)
        batches = None
        if args.dataset:
            epochs = itertools.count()
            batches = itertools.chain.from_iterable(worker.epoch_batches(args.dataset, epoch, 16) for epoch in epochs)
        if args.sync_every:
            worker.wait_for_world_size(args.world_size, timeout=60)
        checkpoints = CheckpointManager(worker=worker) if args.sync_every else None
        for step in itertools.count(1):
            if done.wait(args.step_seconds) or worker.stop_requested:
                break
            if batches is not None:
                next(batches)
            loss = 2.0 * math.exp(-step / 150) + 0.1 + 0.03 * math.sin(step / 3 + seed)
            worker.report(step=step, loss=loss, accuracy=1 - loss / 2.2)
            if checkpoints is not None and step % args.sync_every == 0:
                worker.barrier("sync", timeout=60)
                state = {"weights": np.full(64 * 1024, step, dtype=np.float32)}
                checkpoints.save(state, step, metrics={"loss": loss})
    print(json.dumps({"event": "exited"}), flush=True)


if __name__ == "__main__":
    main()

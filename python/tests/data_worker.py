"""A data-parallel worker for the integration tests: consumes its shards of a dataset for some epochs and logs every
committed sample as ``epoch sample`` lines."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from dtruntime import Worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--step-seconds", type=float, default=0.01)
    parser.add_argument("--log", required=True)
    parser.add_argument(
        "--stall-after", type=int, default=0, help="after logging this many samples, stall in a training step forever"
    )
    args = parser.parse_args()

    with Worker(args.coordinator, args.id, host="127.0.0.1") as worker, open(args.log, "a") as log:
        for epoch in range(args.epochs):
            committed: list[int] = []

            def record(batch: np.ndarray, epoch: int = epoch, committed: list[int] = committed) -> None:
                log.write("".join(f"{epoch} {sample}\n" for sample in batch.tolist()))
                log.flush()
                committed.append(len(batch))

            for _batch in worker.epoch_batches(args.dataset, epoch, args.batch_size, on_commit=record):
                if args.stall_after and sum(committed) >= args.stall_after:
                    # Mid-shard, holding a batch that is not committed: the test kills us here.
                    print(json.dumps({"event": "stalled", "epoch": epoch}), flush=True)
                    time.sleep(3600)
                time.sleep(args.step_seconds)  # the "training step"; a kill lands here, before the commit
            print(json.dumps({"event": "epoch-done", "epoch": epoch}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()

"""A worker for the barrier integration tests: joins, waits for the whole group, then allreduces or waits at a
barrier, and prints what happened as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from dtruntime import BarrierError, Worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--world", type=int, required=True)
    parser.add_argument("--mode", choices=["allreduce", "wait"], required=True)
    parser.add_argument("--length", type=int, default=1000)
    args = parser.parse_args()

    with Worker(args.coordinator, args.id, host="127.0.0.1") as worker:
        worker.wait_for(lambda view: view.world_size == args.world, timeout=60)
        # The rank the allreduces run under: read it now, because once a faster peer finishes and leaves, ranks
        # re-densify and ``worker.rank`` moves on.
        rank = worker.rank
        print(json.dumps({"event": "ready", "rank": rank}), flush=True)
        if args.mode == "allreduce":
            values = np.random.default_rng(args.seed).standard_normal(args.length)
            total = worker.allreduce(values, op="sum")
            mean = worker.allreduce(values.astype(np.float32), op="mean")
            print(
                json.dumps(
                    {
                        "event": "reduced",
                        "rank": rank,
                        "values": values.tolist(),
                        "sum": total.tolist(),
                        "mean": mean.tolist(),
                        "mean_dtype": str(mean.dtype),
                    }
                ),
                flush=True,
            )
        else:
            try:
                worker.barrier("wait-here", timeout=60)
                print(json.dumps({"event": "released"}), flush=True)
            except BarrierError as error:
                print(
                    json.dumps(
                        {
                            "event": "failed",
                            "at": time.time(),
                            "type": type(error).__name__,
                            "message": error.message,
                            "missing_ranks": error.missing_ranks,
                            "missing_workers": error.missing_workers,
                        }
                    ),
                    flush=True,
                )
    sys.exit(0)


if __name__ == "__main__":
    main()

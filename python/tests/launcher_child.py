"""A training process for the ``dtrun`` tests, whose behaviour the command line sets.

Each run writes ``<record>/rank<R>-run<K>.json`` (K = DTR_RESTART_COUNT) with its pid and environment once it is ready
(signal handlers in place, registered if it joins), so tests know when to act. Then, per rank:

- ranks in ``--fail-ranks`` whose run is below ``--fail-runs``: print ``--stderr-lines`` lines to standard error after
  ``--fail-after`` seconds and exit with ``--fail-code``;
- the others follow ``--mode``: ``exit`` (exit 0), ``wait`` (until SIGTERM/SIGINT/SIGHUP, then write
  ``rank<R>-run<K>.signal`` with the signal's name and exit 0), ``ignore`` (ignore SIGTERM and SIGINT, sleep),
  ``join`` (join the task with ``Worker`` under DTR_WORKER_ID and DTR_TASK, exit 0 once the task is stopped).

``--chatter N`` first writes N lines to standard output and to standard error, each in small flushed pieces, so that a
launcher that does not buffer whole lines would mix them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--mode", choices=["exit", "wait", "ignore", "join"], default="exit")
    parser.add_argument("--fail-ranks", default="")
    parser.add_argument("--fail-runs", type=int, default=1 << 30)
    parser.add_argument("--fail-code", type=int, default=3)
    parser.add_argument("--fail-after", type=float, default=0.0)
    parser.add_argument("--stderr-lines", type=int, default=1)
    parser.add_argument("--chatter", type=int, default=0)
    args = parser.parse_args()

    rank = int(os.environ["DTR_LOCAL_RANK"])
    run = int(os.environ["DTR_RESTART_COUNT"])
    stem = args.record / f"rank{rank}-run{run}"
    failing = str(rank) in args.fail_ranks.split(",") and run < args.fail_runs

    if args.chatter:
        chatter(rank, args.chatter)
    if failing:
        record(stem, rank=None)
        time.sleep(args.fail_after)
        for line in range(args.stderr_lines):
            print(f"rank {rank} run {run} stderr line {line}", file=sys.stderr)
        return args.fail_code

    if args.mode == "wait":
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda signum, _frame: stop_on(stem, signum))
        record(stem, rank=None)
        while True:
            signal.pause()
    if args.mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        record(stem, rank=None)
        while True:
            time.sleep(60)
    if args.mode == "join":
        # Imported here only: the other modes start in a fraction of the time without grpc and numpy.
        from dtruntime import Worker  # noqa: PLC0415

        signal.signal(signal.SIGTERM, lambda signum, _frame: stop_on(stem, signum))
        with Worker(worker_id=os.environ["DTR_WORKER_ID"], task_id=os.environ["DTR_TASK"]) as worker:
            record(stem, rank=worker.rank)
            while not worker.stop_requested:
                time.sleep(0.05)
        print(f"rank {rank}: task stopped, exiting")
        return 0
    record(stem, rank=None)
    return 0


def record(stem: Path, rank: int | None) -> None:
    """Writes the run's record atomically (the tests poll for it)."""
    env = {key: value for key, value in os.environ.items() if key.startswith("DTR_") or key == "PYTHONUNBUFFERED"}
    temporary = stem.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), "pgid": os.getpgid(0), "env": env, "rank": rank}))
    temporary.rename(stem.with_suffix(".json"))


def stop_on(stem: Path, signum: int) -> None:
    stem.with_suffix(".signal").write_text(signal.Signals(signum).name)
    sys.exit(0)


def chatter(rank: int, lines: int) -> None:
    """Lines like ``rank=2 line=17 xxxx...`` written a few bytes at a time, flushed after each piece."""
    for stream in (sys.stdout, sys.stderr):
        for line in range(lines):
            text = f"rank={rank} line={line} {'x' * 40}\n"
            for start in range(0, len(text), 7):
                stream.write(text[start : start + 7])
                stream.flush()


if __name__ == "__main__":
    sys.exit(main())

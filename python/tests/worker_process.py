"""A worker process for the integration tests: joins a task, prints every view it gets as a JSON line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from dtruntime import MembershipView, Worker

# The main thread and the worker's background thread (membership changes) both print: one line at a time.
PRINT = threading.Lock()


def emit(event: str, view: MembershipView) -> None:
    line = {
        "event": event,
        "rank": view.rank,
        "world_size": view.world_size,
        "membership_epoch": view.membership_epoch,
        "command": view.command.name,
        "reason": view.reason,
    }
    with PRINT:
        print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--task", default="")
    parser.add_argument("--unary", action="store_true")
    args = parser.parse_args()

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with Worker(
        args.coordinator,
        args.id,
        task_id=args.task,
        host="127.0.0.1",
        use_stream=not args.unary,
        on_membership_change=lambda view: emit("change", view),
    ) as worker:
        emit("registered", worker.view)
        step = 0
        while not done.wait(0.05) and not worker.stop_requested:
            step += 1
            worker.report(step=step, loss=1.0 / step)
    with PRINT:
        print(json.dumps({"event": "exited"}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()

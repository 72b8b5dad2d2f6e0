"""The main job (``make demo``): a coordinator on its defaults and a few worker processes joining one task.

What it shows, live on the HTTP API (http://127.0.0.1:51051/api/workers):

1. four worker processes join the task ``demo`` and get ranks 0..3;
2. they heartbeat over their session streams and report their step;
3. one of them is killed with SIGKILL: the coordinator declares it dead after the dead timeout and the survivors
   learn their new ranks at once, by push;
4. a replacement joins and takes the next rank; at the end every worker leaves gracefully.

Run it with ``make demo`` (which builds ``dtr`` first), or
``python examples/membership_demo.py --dtr .build/debug/dtr``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dtruntime import LocalCoordinator, MembershipView, Worker


def run_worker(coordinator: str, worker_id: str) -> None:
    """One worker process: joins, heartbeats and reports a step until told to stop or terminated."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def announce(view: MembershipView) -> None:
        print(
            f"  [{worker_id}] now rank {view.rank} of {view.world_size} (epoch {view.membership_epoch}): {view.reason}"
        )

    with Worker(coordinator, worker_id, task_id="demo", host="127.0.0.1", on_membership_change=announce) as worker:
        print(f"  [{worker_id}] joined as rank {worker.rank} of {worker.world_size}")
        step = 0
        while not done.wait(0.1) and not worker.stop_requested:
            step += 1
            worker.report(step=step)


def show_workers(coordinator: LocalCoordinator, title: str) -> None:
    workers = coordinator.get_json("/api/workers?task=demo")["workers"]
    print(f"\n{title}")
    print(f"  {'worker':<10} {'rank':>4} {'status':<8} {'step':>6} {'last heartbeat':>15}")
    for worker in workers:
        rank = "-" if worker["rank"] is None else worker["rank"]
        age = f"{worker['last_heartbeat_age_seconds']:.2f}s ago"
        print(f"  {worker['worker_id']:<10} {rank:>4} {worker['status']:<8} {worker['step']:>6} {age:>15}")
    print()


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo waited {timeout}s for a state that did not come")
        time.sleep(0.1)


def spawn(coordinator: LocalCoordinator, worker_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "worker", "--coordinator", coordinator.grpc_address, "--id", worker_id]
    )


def statuses(coordinator: LocalCoordinator) -> dict[str, str]:
    return {w["worker_id"]: w["status"] for w in coordinator.get_json("/api/workers?task=demo")["workers"]}


def run_demo(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)  # the demo's own directory: start from an empty state
    coordinator = LocalCoordinator(
        args.dtr, data_dir=data_dir, grpc_port=args.grpc_port, http_port=args.http_port
    ).start()
    print(f"coordinator up: gRPC {coordinator.grpc_address}, HTTP {coordinator.http_url}")
    print(f"  look at {coordinator.http_url}/api/workers and {coordinator.http_url}/api/status")
    print(f"  its log: {coordinator.log_path}\n")
    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for index in range(args.workers):
            workers[f"worker-{index}"] = spawn(coordinator, f"worker-{index}")
        wait_for(lambda: list(statuses(coordinator).values()).count("healthy") == args.workers, timeout=30)
        time.sleep(2)
        show_workers(coordinator, f"{args.workers} workers joined task 'demo' and heartbeat:")

        victim = "worker-1"
        print(f"killing {victim} with SIGKILL: no goodbye, the failure detector has to notice\n")
        killed_at = time.monotonic()
        workers.pop(victim).kill()
        wait_for(lambda: statuses(coordinator)[victim] == "dead", timeout=30)
        print(f"\n{victim} declared dead {time.monotonic() - killed_at:.1f}s after the kill (dead timeout: 5s)")
        time.sleep(1)
        show_workers(coordinator, "survivors re-ranked, keeping their order:")

        workers["worker-4"] = spawn(coordinator, "worker-4")
        wait_for(lambda: statuses(coordinator).get("worker-4") == "healthy", timeout=30)
        time.sleep(args.linger)
        show_workers(coordinator, "a replacement joined with the next rank:")
    finally:
        for process in workers.values():
            process.terminate()
        for process in workers.values():
            process.wait(timeout=15)
        if coordinator.process and coordinator.process.poll() is None:
            show_workers(coordinator, "every worker left gracefully:")
            print(f"coordinator stopped (exit status {coordinator.stop()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker", help="run one worker process (the demo starts these itself)")
    worker.add_argument("--coordinator", required=True)
    worker.add_argument("--id", required=True)
    parser.add_argument("--dtr", default=None, help="the dtr binary (default: $DTR_BIN, then dtr on PATH)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--grpc-port", type=int, default=50051)
    parser.add_argument("--http-port", type=int, default=51051)
    parser.add_argument("--data-dir", default="dtr-data/demo")
    parser.add_argument("--linger", type=float, default=3.0, help="seconds to keep the final state up")
    args = parser.parse_args()
    if args.command == "worker":
        run_worker(args.coordinator, args.id)
    else:
        run_demo(args)


if __name__ == "__main__":
    main()

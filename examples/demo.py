"""The main job (``make demo``): a coordinator on its defaults and five worker processes sharing one dataset.

What it shows, live on the HTTP API (http://127.0.0.1:51051/api/workers and /api/datasets):

1. four worker processes join the task ``demo`` (ranks 0..3) and heartbeat over their session streams;
2. they read a registered dataset of 1,797 samples (the size of scikit-learn's digits; 36 shards of 50) for two
   epochs, each taking its shards in the epoch's shuffled order and committing each batch after its training step.
   The step is a 50 ms sleep here: training a real model over these shards needs the gradient allreduce that lands
   with barriers;
3. mid-epoch, one worker is killed with SIGKILL while it holds an uncommitted batch, and a fifth worker joins and
   takes a fair share of the shards nobody started; workers that run out steal unstarted shards from the busiest;
4. the coordinator declares the killed worker dead after the dead timeout: the survivors learn their new ranks at
   once, and its unfinished shards move to them, resuming after its last committed batch;
5. at the end, the workers' logs prove each epoch committed every image exactly once.

Run it with ``make demo`` (which builds ``dtr`` first), or
``python examples/demo.py --dtr .build/debug/dtr``.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dtruntime import DatasetRegistry, LocalCoordinator, MembershipView, Worker

SAMPLES, SHARD_SIZE, EPOCHS, BATCH, STEP_SECONDS = 1797, 50, 2, 8, 0.05


def run_worker(coordinator: str, worker_id: str, log_path: Path, stall_after: int) -> None:
    """One worker process: joins, reads its shards of each epoch in batches, logs what it committed."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def announce(view: MembershipView) -> None:
        print(
            f"  [{worker_id}] now rank {view.rank} of {view.world_size} (epoch {view.membership_epoch}): {view.reason}"
        )

    with (
        Worker(coordinator, worker_id, task_id="demo", host="127.0.0.1", on_membership_change=announce) as worker,
        open(log_path, "a") as log,
    ):
        print(f"  [{worker_id}] joined as rank {worker.rank} of {worker.world_size}")
        step = 0
        for epoch in range(EPOCHS):
            committed: list[int] = []

            def record(batch: np.ndarray, epoch: int = epoch, committed: list[int] = committed) -> None:
                """Called once a batch's commit is acknowledged: the exactly-once bookkeeping goes here."""
                log.write("".join(f"{epoch} {sample}\n" for sample in batch.tolist()))
                log.flush()
                committed.append(len(batch))

            for _batch in worker.epoch_batches("digits", epoch, BATCH, on_commit=record):
                if stall_after and sum(committed) >= stall_after:
                    print(json.dumps({"stalled": worker_id}), flush=True)
                    time.sleep(3600)  # the demo kills this worker here, mid-step
                step += 1
                worker.report(step=step)
                time.sleep(STEP_SECONDS)  # the training step
                if done.is_set():
                    return
            print(f"  [{worker_id}] finished epoch {epoch}")


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir = Path(args.data_dir)
        self.workers: dict[str, subprocess.Popen[str]] = {}
        self.coordinator = LocalCoordinator(
            args.dtr, data_dir=self.data_dir, grpc_port=args.grpc_port, http_port=args.http_port
        )

    def log_path(self, worker_id: str) -> Path:
        return self.data_dir / f"{worker_id}.samples"

    def spawn(self, worker_id: str, stall_after: int = 0) -> subprocess.Popen[str]:
        command = [sys.executable, __file__, "worker", "--coordinator", self.coordinator.grpc_address]
        command += ["--id", worker_id, "--log", str(self.log_path(worker_id)), "--stall-after", str(stall_after)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self.relay, args=(worker_id, process), daemon=True).start()
        self.workers[worker_id] = process
        return process

    def relay(self, worker_id: str, process: subprocess.Popen[str]) -> None:
        """Prints a worker's lines; remembers when it stalls."""
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("{"):
                self.stalled.set()
            else:
                print(line, end="", flush=True)

    def workers_table(self, title: str) -> None:
        workers = self.coordinator.get_json("/api/workers?task=demo")["workers"]
        print(f"\n{title}")
        print(f"  {'worker':<10} {'rank':>4} {'status':<8} {'step':>6} {'last heartbeat':>15}")
        for worker in workers:
            rank = "-" if worker["rank"] is None else worker["rank"]
            age = f"{worker['last_heartbeat_age_seconds']:.2f}s ago"
            print(f"  {worker['worker_id']:<10} {rank:>4} {worker['status']:<8} {worker['step']:>6} {age:>15}")

    def data_table(self) -> None:
        (dataset,) = self.coordinator.get_json("/api/datasets")["datasets"]
        for epoch in dataset["tasks"][0]["epochs"]:
            holders = ", ".join(f"{worker} {count}" for worker, count in sorted(epoch["shards_per_worker"].items()))
            print(
                f"  digits epoch {epoch['epoch']}: {epoch['done_shards']}/{epoch['total_shards']} shards done;"
                f" unfinished shards per worker: {holders}"
            )
        print()

    def statuses(self) -> dict[str, str]:
        return {w["worker_id"]: w["status"] for w in self.coordinator.get_json("/api/workers?task=demo")["workers"]}

    def run(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)  # the demo's own directory: start from an empty state
        self.stalled = threading.Event()
        self.coordinator.start()
        print(f"coordinator up: gRPC {self.coordinator.grpc_address}, HTTP {self.coordinator.http_url}")
        print(f"  look at {self.coordinator.http_url}/api/workers and {self.coordinator.http_url}/api/datasets")
        print(f"  its log: {self.coordinator.log_path}\n")
        try:
            self.scenario()
        finally:
            for process in self.workers.values():
                if process.poll() is None:
                    process.terminate()
            for process in self.workers.values():
                process.wait(timeout=30)
            if self.coordinator.process and self.coordinator.process.poll() is None:
                print(f"coordinator stopped (exit status {self.coordinator.stop()})")

    def scenario(self) -> None:
        info = DatasetRegistry(self.coordinator.grpc_address).register(
            "digits", total_samples=SAMPLES, shard_size=SHARD_SIZE, shuffle=True, seed=2026
        )
        print(f"registered dataset digits: {info.total_samples} samples in {info.num_shards} shards\n")
        for index in range(4):
            self.spawn(f"worker-{index}", stall_after=300 if index == 1 else 0)
        wait_for(lambda: list(self.statuses().values()).count("healthy") == 4, timeout=30)
        time.sleep(1)
        self.workers_table("four workers joined task 'demo' and read their shards:")
        self.data_table()

        wait_for(self.stalled.is_set, timeout=60)
        print("killing worker-1 with SIGKILL mid-step, holding a batch it has not committed\n")
        killed_at = time.monotonic()
        self.workers.pop("worker-1").kill()

        self.spawn("worker-4")
        wait_for(lambda: self.statuses().get("worker-4") == "healthy", timeout=30)
        time.sleep(0.5)
        self.workers_table("a fifth worker joined mid-epoch and took a fair share of the unstarted shards:")
        self.data_table()

        wait_for(lambda: self.statuses()["worker-1"] == "dead", timeout=30)
        print(f"\nworker-1 declared dead {time.monotonic() - killed_at:.1f}s after the kill (dead timeout: 5s)")
        self.workers_table("survivors re-ranked, keeping their order; worker-1's unfinished shards moved to them:")
        self.data_table()

        for worker_id, process in self.workers.items():
            if process.wait(timeout=300) != 0:
                raise RuntimeError(f"{worker_id} failed with status {process.returncode}")
        self.workers_table("every worker finished both epochs and left:")
        self.data_table()
        self.verify()

    def verify(self) -> None:
        counts: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        for path in self.data_dir.glob("*.samples"):
            for line in path.read_text().splitlines():
                epoch, sample = map(int, line.split())
                counts[epoch][sample] += 1
        for epoch in range(EPOCHS):
            once = sum(1 for sample in range(SAMPLES) if counts[epoch][sample] == 1)
            extra = sum(count - 1 for count in counts[epoch].values() if count > 1)
            verdict = "each exactly once" if once == SAMPLES and extra == 0 else "NOT exactly once"
            print(f"epoch {epoch}: {once}/{SAMPLES} samples committed once, {extra} repeats: {verdict}")


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo waited {timeout}s for a state that did not come")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    worker = sub.add_parser("worker", help="run one worker process (the demo starts these itself)")
    worker.add_argument("--coordinator", required=True)
    worker.add_argument("--id", required=True)
    worker.add_argument("--log", required=True, type=Path)
    worker.add_argument("--stall-after", type=int, default=0)
    parser.add_argument("--dtr", default=None, help="the dtr binary (default: $DTR_BIN, then dtr on PATH)")
    parser.add_argument("--grpc-port", type=int, default=50051)
    parser.add_argument("--http-port", type=int, default=51051)
    parser.add_argument("--data-dir", default="dtr-data/demo")
    args = parser.parse_args()
    if args.command == "worker":
        run_worker(args.coordinator, args.id, args.log, args.stall_after)
    else:
        Demo(args).run()


if __name__ == "__main__":
    main()

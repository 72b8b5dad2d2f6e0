"""The main job (``make demo``): real data-parallel training on a coordinator with its default settings.

1. starts a coordinator on its defaults (gRPC 127.0.0.1:50051, HTTP and the dashboard on http://127.0.0.1:51051/,
   state in ``dtr-data/demo``);
2. launches ``examples/real_training_simple.py`` as four workers with ``dtrun``: a numpy MLP learns scikit-learn's
   handwritten digits, every rank reading its share of each epoch from the coordinator's shard ledger and averaging
   gradients with the others through the coordinator, checkpointing every epoch;
3. mid-epoch, kills one worker with SIGKILL: the others re-synchronise and keep training, ``dtrun`` restarts the
   killed one, and it rejoins with the job's current weights;
4. ends with a summary: held-out accuracy, epochs, restarts, whether every rank holds the same weights, and the
   exactly-once proof per epoch from the samples each worker committed.

Ctrl-C stops everything cleanly (the workers get SIGINT through dtrun, then the coordinator stops).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dtruntime import LocalCoordinator

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "real_training_simple.py"
WORKERS, EPOCHS, TRAIN_SAMPLES = 4, 20, 1438


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir = Path(args.data_dir)
        self.out = self.data_dir / "run"
        # Its own session: a Ctrl-C reaches this script, which stops the workers first, then the coordinator.
        self.coordinator = LocalCoordinator(
            args.dtr,
            data_dir=self.data_dir,
            grpc_port=args.grpc_port,
            http_port=args.http_port,
            start_new_session=True,
        )
        self.job: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    # MARK: the run

    def run(self) -> int:
        shutil.rmtree(self.data_dir, ignore_errors=True)  # the demo's own directory: start from an empty state
        self.out.mkdir(parents=True)
        self.coordinator.start()
        print(f"coordinator up: gRPC {self.coordinator.grpc_address}, log {self.coordinator.log_path}")
        print(f"\n  open the dashboard: {self.coordinator.http_url}/\n", flush=True)
        try:
            return self.scenario()
        except KeyboardInterrupt:
            print("\ninterrupted: stopping the workers and the coordinator")
            return 130
        finally:
            self.stop_job()
            if self.coordinator.process and self.coordinator.process.poll() is None:
                print(f"coordinator stopped (exit status {self.coordinator.stop()})")

    def scenario(self) -> int:
        self.launch()
        wait_for(lambda: self.reached_epoch(self.args.kill_at_epoch), timeout=300, job=self.job)
        self.workers_table(f"four workers are training (epoch {self.args.kill_at_epoch}):")
        victims = self.children()
        victim = victims[len(victims) // 2]
        worker_id = worker_of(victim)
        before = self.worker(worker_id)
        os.kill(victim, signal.SIGKILL)
        print(
            f"\nkilled worker {worker_id} (pid {victim}) with SIGKILL mid-epoch: the others re-synchronise and go on;"
        )
        print("dtrun restarts it under the same worker id, and it takes the job's current weights\n", flush=True)
        wait_for(
            lambda: (
                (now := self.worker(worker_id)) is not None
                and now["registered_at"] != before["registered_at"]
                and now["status"] == "healthy"
                and now["step"] > 0
            ),
            timeout=60,
            job=self.job,
        )
        self.workers_table(f"{worker_id} is back (a new process, the same rank) and trains with the others:")
        assert self.job is not None
        status = self.job.wait()
        if status != 0:
            print(f"\ndtrun failed with exit status {status}")
            return status
        self.summary()
        if sys.stdin.isatty() and not self.args.no_wait:
            print(f"\nthe dashboard stays up at {self.coordinator.http_url}/ : press Ctrl-C to stop")
            signal.pause()
        return 0

    def launch(self) -> None:
        command = [
            sys.executable, "-m", "dtruntime.run", "--nproc", str(WORKERS),
            "--coordinator", self.coordinator.grpc_address, "--task", "digits",
            str(EXAMPLE), "--epochs", str(EPOCHS), "--output-dir", str(self.out),
            "--step-delay", str(self.args.step_delay),
        ]  # fmt: skip
        print(f"$ dtrun --nproc {WORKERS} examples/real_training_simple.py --epochs {EPOCHS}\n", flush=True)
        # dtrun gets its own process group: a Ctrl-C reaches this script, which forwards it (SIGINT) to dtrun.
        self.job = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        threading.Thread(target=self.relay, daemon=True).start()

    def relay(self) -> None:
        assert self.job is not None and self.job.stdout is not None
        for line in self.job.stdout:
            self.output.append(line)
            print(f"  {line}", end="", flush=True)

    def stop_job(self) -> None:
        if self.job is None or self.job.poll() is not None:
            return
        self.job.send_signal(signal.SIGINT)
        try:
            self.job.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.job.kill()
            self.job.wait()

    # MARK: what it shows

    def children(self) -> list[int]:
        """dtrun's children: the worker processes."""
        assert self.job is not None
        pids = []
        for entry in Path("/proc").iterdir():
            try:
                stat = (entry / "stat").read_text() if entry.name.isdigit() else ""
            except OSError:
                continue
            if stat and int(stat.rsplit(")", 1)[1].split()[1]) == self.job.pid:
                pids.append(int(entry.name))
        return sorted(pids)

    def worker(self, worker_id: str) -> dict[str, Any] | None:
        workers = self.coordinator.get_json("/api/workers?task=digits")["workers"]
        return next((worker for worker in workers if worker["worker_id"] == worker_id), None)

    def committed(self) -> dict[int, collections.Counter[int]]:
        counts: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        for path in self.out.glob("*.samples"):
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2:
                    counts[int(parts[0])][int(parts[1])] += 1
        return counts

    def reached_epoch(self, epoch: int) -> bool:
        return any(counts for e, counts in self.committed().items() if e >= epoch)

    def workers_table(self, title: str) -> None:
        workers = self.coordinator.get_json("/api/workers?task=digits")["workers"]
        print(f"\n{title}")
        print(f"  {'worker':<28} {'rank':>4} {'status':<8} {'step':>6} {'loss':>8} {'accuracy':>9}")
        for worker in workers:
            rank = "-" if worker["rank"] is None else worker["rank"]
            metrics = worker["metrics"]
            loss = f"{metrics['loss']:.4f}" if metrics.get("loss") is not None else "-"
            accuracy = f"{metrics['accuracy']:.4f}" if metrics.get("accuracy") is not None else "-"
            print(
                f"  {worker['worker_id']:<28} {rank:>4} {worker['status']:<8} {worker['step']:>6} {loss:>8} "
                f"{accuracy:>9}"
            )
        print(flush=True)

    def summary(self) -> None:
        summaries = [json.loads(path.read_text()) for path in sorted(self.out.glob("*.json"))]
        restarts = sum(1 for line in self.output if "restarting" in line.lower())
        weights = {summary["weights"] for summary in summaries}
        accuracy = summaries[0]["final_accuracy"] if summaries else float("nan")
        print("\nsummary")
        print(f"  held-out accuracy: {accuracy:.4f} after {summaries[0]['epoch']} epochs, {summaries[0]['global_step']}"
              " steps")  # fmt: skip
        print(f"  workers: {len(summaries)}; restarts by dtrun: {restarts}; re-synchronisations: "
              f"{', '.join(str(summary['resyncs']) for summary in summaries)}")  # fmt: skip
        verdict = "yes" if len(weights) == 1 else f"NO ({len(weights)} different)"
        print(f"  every rank holds the same weights: {verdict}")
        committed = self.committed()
        for epoch in range(EPOCHS):
            counts = committed[epoch]
            once = sum(1 for sample in range(TRAIN_SAMPLES) if counts[sample] == 1)
            repeats = sum(count - 1 for count in counts.values() if count > 1)
            verdict = "each exactly once" if once == TRAIN_SAMPLES and repeats == 0 else "NOT exactly once"
            print(f"  epoch {epoch:>2}: {once}/{TRAIN_SAMPLES} samples committed once, {repeats} repeats: {verdict}")


def worker_of(pid: int) -> str:
    """The worker id dtrun gave a child process (its DTR_WORKER_ID)."""
    environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return next(entry.split(b"=", 1)[1].decode() for entry in environment if entry.startswith(b"DTR_WORKER_ID="))


def wait_for(condition: Callable[[], bool], timeout: float, job: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if job is not None and job.poll() is not None:
            raise RuntimeError(f"dtrun ended early (exit status {job.returncode})")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the demo waited {timeout}s for a state that did not come")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtr", default=None, help="the dtr binary (default: $DTR_BIN, then dtr on PATH)")
    parser.add_argument("--grpc-port", type=int, default=50051)
    parser.add_argument("--http-port", type=int, default=51051)
    parser.add_argument("--data-dir", default="dtr-data/demo")
    parser.add_argument("--step-delay", type=float, default=0.05, help="seconds per step added, to watch it live")
    parser.add_argument("--kill-at-epoch", type=int, default=6, help="the epoch in which a worker is killed")
    parser.add_argument("--no-wait", action="store_true", help="stop at the end even in a terminal")
    return Demo(parser.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())

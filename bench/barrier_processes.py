"""Barrier release latency in the deployment shape: each worker its own process (threads in one interpreter mostly
measure the GIL). Five backends, each driven by the same harness of N processes:

- torch's TCPStore barrier (ADD + WAIT), as torch.distributed's store-based barrier does it (Debian's python3-torch,
  run under /usr/bin/python3);
- dtruntime's ``Worker.barrier`` (the SDK: each process a ``Worker`` with its own session stream and barrier stream);
- the floor: a ``multiprocessing.Barrier`` (shared-memory semaphores, no network at all);
- grpcio's own floor, on the same coordinator (started with ``--bench-noop-service``): every process sends one
  barrier-sized message and waits for its echo, no barrier behind it. Two ways: on a bidirectional stream with the
  SDK's threads (the caller queues the message, grpcio's thread sends it, a reader thread receives the echo and wakes
  the caller: the shape of ``Worker.barrier``), and as a blocking unary call (the caller's thread does it all, a new
  HTTP/2 stream each time). A barrier on grpcio cannot release sooner than the echo: its last release waits for the
  last arrival's message to go up and a message to come down to every process, as the echo's does.

Each round lines the processes up (a multiprocessing.Barrier that is not measured), then every process notes its
arrival time, passes the barrier under test, and notes its release time (CLOCK_MONOTONIC, shared by all processes).
A round's release latency is the last release minus the last arrival. The first round of each run is dropped.

Usage (from the repository root, after `make setup` and a release build):
    .venv/bin/python bench/barrier_processes.py --processes 8 32 --rounds 200

The last line of each run is a JSON object with every figure, for scripts. ``complete`` says whether every round of
every process of every backend finished (a process that fails stops the others at the next line-up; the figures are
then of the rounds everyone finished); ``--check`` exits non-zero unless it is true (what CI asserts at a small size;
it asserts no speed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import multiprocessing.synchronize
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

from percentiles import percentile  # bench/percentiles.py: the script's directory is on sys.path

ROOT = Path(__file__).resolve().parents[1]
TORCH_PYTHON = "/usr/bin/python3"


# MARK: the harness (runs in every backend's interpreter)


class _Plan(NamedTuple):
    """What every participant of one run shares (passed to each spawned process)."""

    processes: int
    rounds: int
    backend: str
    setting: str
    line_up: multiprocessing.synchronize.Barrier
    floor: multiprocessing.synchronize.Barrier
    results: multiprocessing.Queue


def _participant(index: int, plan: _Plan) -> None:
    """One process: makes its barrier, then `rounds` times lines up, arrives, is released."""
    arrivals: list[int] = []
    releases: list[int] = []
    failure = ""
    try:
        barrier, close = _make_barrier(plan.backend, plan.setting, index, plan.processes, plan.floor)
        try:
            for round_ in range(plan.rounds):
                plan.line_up.wait()
                arrivals.append(time.monotonic_ns())
                barrier(round_)
                releases.append(time.monotonic_ns())
        finally:
            close()
    except Exception as error:
        failure = f"process {index}: {error!r}"
        plan.line_up.abort()
        plan.floor.abort()
    plan.results.put((index, arrivals[: len(releases)], releases, failure))


def _make_barrier(
    backend: str, setting: str, index: int, processes: int, floor: multiprocessing.synchronize.Barrier
) -> tuple[Callable[[int], None], Callable[[], None]]:
    if backend == "floor":
        return (lambda _round: floor.wait()), (lambda: None)
    if backend == "tcpstore":
        from datetime import timedelta  # noqa: PLC0415

        from torch.distributed import TCPStore  # noqa: PLC0415 - only under /usr/bin/python3

        store = TCPStore("127.0.0.1", int(setting), processes, False, timeout=timedelta(seconds=120))

        def tcpstore_barrier(round_: int) -> None:
            key = f"round-{round_}"
            if store.add(key, 1) == processes:
                store.set(f"{key}/done", "1")
            store.wait([f"{key}/done"])

        return tcpstore_barrier, (lambda: None)
    if backend == "echo-stream":
        return _stream_echo(setting)
    if backend == "echo-unary":
        import grpc  # noqa: PLC0415

        channel = grpc.insecure_channel(setting)
        echo = channel.unary_unary(f"{_BENCH_SERVICE}/Echo")
        return (lambda _round: echo(_ECHO_PAYLOAD, timeout=120)), channel.close
    if backend == "dtr":
        sys.path.insert(0, str(ROOT / "python"))
        from dtruntime import Worker  # noqa: PLC0415 - the venv side only

        worker = Worker(setting, f"p{index}", task_id=f"procs-{processes}", world_size=processes, host="127.0.0.1")
        worker.start()

        def dtr_barrier(_round: int) -> None:
            worker.barrier("bench", timeout=120)

        return dtr_barrier, worker.close
    raise ValueError(f"unknown backend {backend}")


def _stream_echo(setting: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """grpcio's floor in the SDK's stream shape: a queue-fed request iterator, a reader thread, a semaphore."""
    import queue  # noqa: PLC0415
    import threading  # noqa: PLC0415

    import grpc  # noqa: PLC0415

    channel = grpc.insecure_channel(setting)
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def produce() -> Iterator[bytes]:
        while (message := requests.get()) is not None:
            yield message

    responses = channel.stream_stream(f"{_BENCH_SERVICE}/Stream")(produce())
    echoed = threading.Semaphore(0)
    ended: list[str] = []

    def read() -> None:
        try:
            for _ in responses:
                echoed.release()
            ended.append("the coordinator ended the echo stream")
        except grpc.RpcError as error:
            hint = (
                ": start the coordinator with --bench-noop-service"
                if error.code() == grpc.StatusCode.UNIMPLEMENTED
                else ""
            )
            ended.append(f"the echo stream failed ({error.code().name}: {error.details()}){hint}")
        # Wakes a caller waiting for an echo, to raise why there is none.
        echoed.release()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def stream_echo(_round: int) -> None:
        requests.put(_ECHO_PAYLOAD)
        if not echoed.acquire(timeout=120):
            raise TimeoutError("no echo within 120 s: is the coordinator overloaded or stopped?")
        if ended:
            raise RuntimeError(ended[0])

    def close_stream() -> None:
        requests.put(None)
        reader.join(timeout=10)
        channel.close()

    return stream_echo, close_stream


_BENCH_SERVICE = "/dtruntime.bench.Bench"
# About a barrier arrival on the SDK's stream (call id, task, barrier name, worker, epoch, generation).
_ECHO_PAYLOAD = bytes(64)


class Run(NamedTuple):
    latencies: list[float]
    """Release latency (seconds) of every round every process finished."""
    complete: bool
    """Every process finished every round."""


def run_backend(backend: str, setting: str, processes: int, rounds: int) -> Run:
    """Release latency of every round of `backend` with `processes` processes."""
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    plan = _Plan(processes, rounds, backend, setting, context.Barrier(processes), context.Barrier(processes), results)
    children = [context.Process(target=_participant, args=(index, plan)) for index in range(processes)]
    for child in children:
        child.start()
    collected = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join(timeout=60)
    failures = [entry[3] for entry in collected if entry[3]]
    failures += [f"a process exited with status {child.exitcode}" for child in children if child.exitcode != 0]
    for failure in failures:
        print(f"{backend} with {processes} processes: {failure}", file=sys.stderr)
    arrivals = [entry[1] for entry in collected]
    releases = [entry[2] for entry in collected]
    finished = min(len(r) for r in releases)
    latencies = [(max(r[i] for r in releases) - max(a[i] for a in arrivals)) / 1e9 for i in range(finished)]
    return Run(latencies, not failures and finished == rounds)


# MARK: the backends' runners


def tcpstore_runner(processes: int, rounds: int) -> Run:
    """Under /usr/bin/python3: a TCPStore server in this process, N client processes."""
    from torch.distributed import TCPStore  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = TCPStore("127.0.0.1", port, processes, True, wait_for_workers=False)  # noqa: F841 - keeps serving
    return run_backend("tcpstore", str(port), processes, rounds)


class DtrRuns(NamedTuple):
    barrier: Run
    server_p50: float | None
    """The coordinator's own release latency (last arrival to every waiter answered), p50 seconds."""
    echo_stream: Run
    echo_unary: Run


def dtr_runner(processes: int, rounds: int, binary: str) -> DtrRuns:
    """``Worker.barrier``, then grpcio's echo floors, on one coordinator."""
    sys.path.insert(0, str(ROOT / "python"))
    from dtruntime import LocalCoordinator  # noqa: PLC0415

    with (
        tempfile.TemporaryDirectory() as data,
        LocalCoordinator(binary, data_dir=data, args=["--bench-noop-service"]) as coordinator,
    ):
        run = run_backend("dtr", coordinator.grpc_address, processes, rounds)
        server = coordinator.get_json("/api/barriers")["release_latency"]
        echo_stream = run_backend("echo-stream", coordinator.grpc_address, processes, rounds)
        echo_unary = run_backend("echo-unary", coordinator.grpc_address, processes, rounds)
        return DtrRuns(run, server["p50_seconds"], echo_stream, echo_unary)


# MARK: main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--dtr", default=str(ROOT / ".build" / "release" / "dtr"))
    parser.add_argument("--check", action="store_true", help="exit 1 unless every round of every backend ran")
    parser.add_argument("--backend", choices=["tcpstore"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend == "tcpstore":  # the child under /usr/bin/python3
        print(json.dumps(tcpstore_runner(args.processes[0], args.rounds)._asdict()))
        return

    print(
        f"`.venv/bin/python bench/barrier_processes.py --processes {' '.join(map(str, args.processes))} "
        f"--rounds {args.rounds}` — {time.strftime('%Y-%m-%dT%H:%M:%S%z')}; {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()}); load average {os.getloadavg()[0]:.2f} before "
        "(first round of each run dropped)\n"
    )
    print(
        "| processes | TCPStore p50 / p99 | worker.barrier p50 / p99 | floor: multiprocessing.Barrier p50 / p99 "
        "| grpcio echo, SDK's stream shape p50 / p99 | grpcio echo, unary p50 / p99 "
        "| p50 ratio (goal ≤ 1) | p99 ratio (goal ≤ 0.5) | worker.barrier ÷ stream echo (p50) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    figures: list[dict[str, object]] = []
    complete = True
    for processes in args.processes:
        child = subprocess.run(
            [
                TORCH_PYTHON,
                __file__,
                "--backend",
                "tcpstore",
                "--processes",
                str(processes),
                "--rounds",
                str(args.rounds + 1),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        torch_run = Run(**json.loads(child.stdout.strip().splitlines()[-1]))
        dtr = dtr_runner(processes, args.rounds + 1, args.dtr)
        floor_run = run_backend("floor", "", processes, args.rounds + 1)
        runs = {
            "tcpstore": torch_run,
            "dtr": dtr.barrier,
            "floor": floor_run,
            "echo_stream": dtr.echo_stream,
            "echo_unary": dtr.echo_unary,
        }
        complete &= all(run.complete for run in runs.values())
        if not all(len(run.latencies) > 1 for run in runs.values()):
            print(f"| {processes} | a backend finished no measured round (see above) |", flush=True)
            continue
        row: dict[str, object] = {"processes": processes, "rounds": len(dtr.barrier.latencies) - 1}
        for name, run in runs.items():
            row[f"{name}_p50_ms"] = percentile(run.latencies[1:], 0.5) * 1000
            row[f"{name}_p99_ms"] = percentile(run.latencies[1:], 0.99) * 1000
        row["coordinator_release_p50_ms"] = None if dtr.server_p50 is None else dtr.server_p50 * 1000
        ms = {key: value for key, value in row.items() if key.endswith("_ms") and isinstance(value, float)}
        p50_ratio = ms["dtr_p50_ms"] / ms["tcpstore_p50_ms"]
        p99_ratio = ms["dtr_p99_ms"] / ms["tcpstore_p99_ms"]
        row["p50_ratio"], row["p99_ratio"] = p50_ratio, p99_ratio
        row["goal_met"] = p50_ratio <= 1 and p99_ratio <= 0.5
        row["echo_stream_p50_ratio"] = ms["dtr_p50_ms"] / ms["echo_stream_p50_ms"]
        figures.append(row)
        cells = " | ".join(
            f"{ms[f'{name}_p50_ms']:.2f} / {ms[f'{name}_p99_ms']:.2f} ms"
            for name in ("tcpstore", "dtr", "floor", "echo_stream", "echo_unary")
        )
        print(
            f"| {processes} | {cells} "
            f"| {p50_ratio:.2f} {'✓' if p50_ratio <= 1 else '✗'} | {p99_ratio:.2f} {'✓' if p99_ratio <= 0.5 else '✗'} "
            f"| {row['echo_stream_p50_ratio']:.2f} |",
            flush=True,
        )
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    print(
        json.dumps(
            {
                "bench": "barrier-processes",
                "rounds": args.rounds,
                "load_average_after": os.getloadavg(),
                "complete": complete,
                "runs": figures,
            }
        )
    )
    if args.check and not complete:
        sys.exit(1)


if __name__ == "__main__":
    main()

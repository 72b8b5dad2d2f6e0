"""Barrier release latency: torch's TCPStore barrier (ADD + WAIT) against dtruntime's barrier (the SDK's
`barrier_sync`, over the process's BarrierStream), both driven by the same harness of N client threads, each with its
own client; and the floor: a threading.Barrier in the same harness, with no network at all.

Each round lines the threads up (a local threading.Barrier), then every thread notes its arrival time, passes the
distributed barrier, and notes its release time. A round's release latency is the last release minus the last
arrival. TCPStore needs Debian's python3-torch, so it runs under /usr/bin/python3 in a child process; the dtruntime
side runs here, against a coordinator this script starts.

Usage (from the repository root, after `make setup` and a release build):
    .venv/bin/python bench/barrier_vs_tcpstore.py --threads 64 256 --rounds 40
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from percentiles import percentile  # bench/percentiles.py: the script's directory is on sys.path

ROOT = Path(__file__).resolve().parents[1]


def run_rounds(threads: int, rounds: int, make_barrier: Callable[[int], Callable[[int], None]]) -> list[float]:
    """Release latency of each round, in seconds."""
    barriers = [make_barrier(index) for index in range(threads)]
    line_up = threading.Barrier(threads)
    arrivals = [[0.0] * threads for _ in range(rounds)]
    releases = [[0.0] * threads for _ in range(rounds)]

    def run(index: int) -> None:
        for round_ in range(rounds):
            line_up.wait()
            arrivals[round_][index] = time.perf_counter()
            barriers[index](round_)
            releases[round_][index] = time.perf_counter()

    workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [max(releases[r]) - max(arrivals[r]) for r in range(rounds)]


def in_process(threads: int, rounds: int) -> list[float]:
    """The floor: a threading.Barrier, no network at all. What is left is waking N Python threads under the GIL."""
    local = threading.Barrier(threads)
    return run_rounds(threads, rounds, lambda _index: lambda _round: local.wait())


def tcpstore(threads: int, rounds: int) -> list[float]:
    from torch.distributed import TCPStore  # noqa: PLC0415 - only under /usr/bin/python3

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = TCPStore("127.0.0.1", port, threads, True, wait_for_workers=False)  # noqa: F841 - keeps serving

    def make(index: int) -> Callable[[int], None]:
        store = TCPStore("127.0.0.1", port, threads, False)

        def barrier(round_: int) -> None:
            key = f"round-{round_}"
            if store.add(key, 1) == threads:
                store.set(f"{key}/done", "1")
            store.wait([f"{key}/done"])

        return barrier

    return run_rounds(threads, rounds, make)


def dtr(threads: int, rounds: int, binary: str) -> list[float]:
    sys.path.insert(0, str(ROOT / "python"))
    from dtruntime import CoordinatorClient, LocalCoordinator  # noqa: PLC0415 - the venv side only

    with (
        tempfile.TemporaryDirectory() as data,
        LocalCoordinator(
            binary,
            data_dir=data,
            # No rate limit: one client process sends thousands of calls at once, on purpose.
            args=[
                "--heartbeat-interval",
                "60s",
                "--suspect-after",
                "120s",
                "--dead-after",
                "600s",
                "--grpc-rate-limit",
                "0",
            ],
        ) as coordinator,
    ):
        clients = [CoordinatorClient(coordinator.grpc_address) for _ in range(threads)]
        epoch = 0
        for index, client in enumerate(clients):
            epoch = client.register_worker(f"t{index}", "127.0.0.1", 1, task_id=f"bench-{threads}").membership_epoch

        def make(index: int) -> Callable[[int], None]:
            def barrier(_round: int) -> None:
                clients[index].barrier_sync("bench", f"t{index}", membership_epoch=epoch, timeout=60)

            return barrier

        latencies = run_rounds(threads, rounds, make)
        server = coordinator.get_json("/api/barriers")["release_latency"]
        print(
            f"  ({threads} threads: the coordinator's own release, last arrival to every waiter resumed: "
            f"p50 {server['p50_seconds'] * 1000:.2f} ms)",
            file=sys.stderr,
        )
        for client in clients:
            client.close()
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--backend", choices=["tcpstore"], help=argparse.SUPPRESS)
    parser.add_argument("--dtr", default=str(ROOT / ".build" / "release" / "dtr"))
    args = parser.parse_args()
    if args.backend == "tcpstore":  # the child process
        print(json.dumps(tcpstore(args.threads[0], args.rounds)))
        return

    print(
        f"`.venv/bin/python bench/barrier_vs_tcpstore.py --threads {' '.join(map(str, args.threads))} "
        f"--rounds {args.rounds}` (first round of each run dropped as warm-up)\n"
    )
    print(
        "| threads | TCPStore p50 | TCPStore p99 | dtruntime p50 | dtruntime p99 | p50 ratio (target ≤ 0.5) "
        "| floor p50: threading.Barrier | floor ÷ TCPStore |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for threads in args.threads:
        child = subprocess.run(
            [
                "/usr/bin/python3",
                __file__,
                "--backend",
                "tcpstore",
                "--threads",
                str(threads),
                "--rounds",
                str(args.rounds + 1),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        torch_latencies = json.loads(child.stdout)[1:]
        dtr_latencies = dtr(threads, args.rounds + 1, args.dtr)[1:]
        floor = percentile(in_process(threads, args.rounds + 1)[1:], 0.5)
        row = [percentile(torch_latencies, 0.5), percentile(torch_latencies, 0.99)]
        row += [percentile(dtr_latencies, 0.5), percentile(dtr_latencies, 0.99)]
        cells = " | ".join(f"{value * 1000:.2f} ms" for value in row)
        print(
            f"| {threads} | {cells} | {row[2] / row[0]:.2f} | {floor * 1000:.2f} ms | {floor / row[0]:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""Checkpoint I/O against baselines measured in the same run, on the same filesystem.

(a) A 1 GiB numpy state saved through the SDK to a local directory (write, sha256, fsync, rename, manifest) against
    ``dd if=/dev/zero of=... bs=16M count=64 conv=fsync`` in the same directory. Target: SDK ≥ 0.9 x dd.
(b) How long ``save(blocking=False)`` blocks the caller against a blocking save of the same state, with each snapshot
    mode (``copy``: the state is copied to host buffers; ``fork``: a copy-on-write child process writes). Target: ≤ 5 %.
(c) The same state uploaded to S3 (SeaweedFS on loopback) through the SDK against boto3's ``upload_file`` of the same
    bytes, with the same transfer settings (boto3's defaults). Target: SDK ≥ 0.9 x boto3.

Rounds alternate which side goes first; files are deleted (and the filesystem synced) between rounds, outside the
timings. Rates are medians; ratios are the median of each round's ratio (the two sides of a round run back to back,
so a ratio is less exposed to the machine's drifting load than a ratio of medians). The machine is shared: the load
average is printed with the results.

Usage (from the repository root, after `make setup`):
    .venv/bin/python bench/checkpoint_bench.py [--size-mib 1024] [--rounds 5] [--s3-rounds 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dtruntime import CheckpointManager
from dtruntime.checkpoint_store import LocalStore

ROOT = Path(__file__).resolve().parents[1]
ARRAY_MIB = 64


def make_state(size_mib: int) -> dict[str, np.ndarray]:
    """``size_mib`` MiB of float32 weights in 64 MiB tensors, random (so nothing compresses or dedupes)."""
    rng = np.random.default_rng(0)
    count = max(1, size_mib // ARRAY_MIB)
    per_array = size_mib * (1 << 20) // count // 4
    return {f"layer{index:02d}.weight": rng.standard_normal(per_array, dtype=np.float32) for index in range(count)}


def clean(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    os.sync()  # settle writeback (and the discard of freed blocks) before the next timed run


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def dd(target: Path, size_mib: int) -> float:
    count = size_mib // 16
    command = ["dd", "if=/dev/zero", f"of={target}", "bs=16M", f"count={count}", "conv=fsync", "status=none"]
    return timed(lambda: subprocess.run(command, check=True))


def bench_local(state: dict[str, np.ndarray], size_mib: int, rounds: int, workdir: Path) -> dict[str, list[float]]:
    """(a): seconds per round of dd, of the SDK's blocking save, and of the SDK without early writeback."""
    times: dict[str, list[float]] = {"dd": [], "sdk": [], "sdk_no_kick": []}
    store = workdir / "sdk-store"
    kick = LocalStore._start_writeback
    for round_ in range(rounds):
        order = ["dd", "sdk", "sdk_no_kick"]
        order = order[round_ % 3 :] + order[: round_ % 3]
        for side in order:
            if side == "dd":
                seconds = dd(workdir / "dd.out", size_mib)
                clean(workdir / "dd.out")
            else:
                LocalStore._start_writeback = kick if side == "sdk" else None
                with CheckpointManager(store) as checkpoints:
                    seconds = timed(lambda step=round_: checkpoints.save(state, step=step))
                LocalStore._start_writeback = kick
                clean(store)
            times[side].append(seconds)
            print(f"  (a) round {round_} {side}: {seconds:.3f} s", file=sys.stderr, flush=True)
    return times


def bench_async(
    state: dict[str, np.ndarray], rounds: int, workdir: Path, snapshot: str = "copy"
) -> dict[str, list[float]]:
    """(b): how long save(blocking=False) holds the caller (first: fresh staging memory; then reused), how long the
    background save takes to finish, and blocking saves of the same state (alternating which goes first)."""
    times: dict[str, list[float]] = {"async_first": [], "async_block": [], "async_total": [], "blocking": []}
    store = workdir / "async-store"
    with CheckpointManager(store, snapshot=snapshot) as checkpoints:  # type: ignore[arg-type]
        for round_ in range(rounds + 1):

            def background(step: int, first: bool = round_ == 0) -> None:
                started = time.perf_counter()
                future = checkpoints.save(state, step=step, blocking=False)
                times["async_first" if first else "async_block"].append(time.perf_counter() - started)
                future.result()
                times["async_total"].append(time.perf_counter() - started)

            def blocking(step: int) -> None:
                times["blocking"].append(timed(lambda: checkpoints.save(state, step=step)))

            for run in (background, blocking) if round_ % 2 == 0 else (blocking, background):
                run(step=2 * round_ + (run is blocking))
                clean(store)
            blocked = (times["async_first"] + times["async_block"])[-1]
            print(
                f"  (b, {snapshot}) round {round_}: caller blocked {blocked * 1000:.1f} ms, background save "
                f"{times['async_total'][-1]:.3f} s, blocking save {times['blocking'][-1]:.3f} s",
                file=sys.stderr,
                flush=True,
            )
    return times


def bench_s3(state: dict[str, np.ndarray], rounds: int, workdir: Path) -> dict[str, list[float]]:
    """(c): the SDK's upload of the state against boto3's upload_file of the same bytes (the SDK's own part file)."""
    sys.path.insert(0, str(ROOT / "python" / "tests"))
    from s3server import SeaweedS3  # noqa: PLC0415 - the tests' SeaweedFS harness, not part of the package

    times: dict[str, list[float]] = {"boto3": [], "sdk": []}
    part_dir = workdir / "s3-source"
    with CheckpointManager(part_dir) as checkpoints:
        part = Path(checkpoints.save(state, step=0).path)
    with SeaweedS3(workdir / "seaweedfs", volume_size_limit_mb=1024, max_volumes=64) as server:
        server.start()
        bucket = server.create_bucket("bench")
        os.environ["AWS_ACCESS_KEY_ID"] = server.access_key
        os.environ["AWS_SECRET_ACCESS_KEY"] = server.secret_key
        client = server.client()
        uri = f"s3://{bucket}/sdk"
        with CheckpointManager(uri, s3_endpoint=server.endpoint, s3_region=server.region) as checkpoints:
            for round_ in range(rounds):
                for side in ("boto3", "sdk") if round_ % 2 == 0 else ("sdk", "boto3"):
                    if side == "boto3":
                        seconds = timed(lambda key=f"boto3/{round_}.part": client.upload_file(str(part), bucket, key))
                        client.delete_object(Bucket=bucket, Key=f"boto3/{round_}.part")
                    else:
                        seconds = timed(lambda step=round_: checkpoints.save(state, step=step))
                        for key in client.list_objects_v2(Bucket=bucket, Prefix="sdk/").get("Contents", []):
                            client.delete_object(Bucket=bucket, Key=key["Key"])
                    times[side].append(seconds)
                    print(f"  (c) round {round_} {side}: {seconds:.3f} s", file=sys.stderr, flush=True)
    return times


def paired(sdk: list[float], baseline: list[float]) -> float:
    """Median over rounds of baseline time / SDK time (a throughput ratio: > 1 means the SDK was faster)."""
    return statistics.median(base / ours for ours, base in zip(sdk, baseline, strict=True))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} vCPU {cpu}, Linux {platform.release()}, Python {platform.python_version()}"


def filesystem(path: Path) -> str:
    result = subprocess.run(["df", "-T", str(path)], capture_output=True, text=True, check=False)
    fields = result.stdout.splitlines()[-1].split() if result.returncode == 0 else []
    return f"{fields[1]} on {fields[0]}" if len(fields) > 1 else "unknown filesystem"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--s3-rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument(
        "--only", nargs="+", choices=["a", "b", "c"], default=["a", "b", "c"], help="run only these measurements"
    )
    args = parser.parse_args()

    load_before = os.getloadavg()
    state = make_state(args.size_mib)
    size = sum(array.nbytes for array in state.values())
    mib = size / (1 << 20)
    with tempfile.TemporaryDirectory(prefix="dtr-checkpoint-bench-", dir=args.dir) as scratch:
        workdir = Path(scratch)
        local = bench_local(state, args.size_mib, args.rounds, workdir) if "a" in args.only else None
        backgrounds = (
            {snapshot: bench_async(state, args.rounds, workdir, snapshot) for snapshot in ("copy", "fork")}
            if "b" in args.only
            else {}
        )
        s3 = bench_s3(state, args.s3_rounds, workdir) if "c" in args.only else None
    load_after = os.getloadavg()

    median = statistics.median
    print(f"## Checkpoint I/O — {datetime.date.today().isoformat()}\n")
    print(f"Machine: {machine()}; scratch directory {args.dir} ({filesystem(args.dir)}).")
    print(
        f"Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (shared machine). State: "
        f"{len(state)} float32 arrays, {mib:.0f} MiB. Medians of {args.rounds} rounds ({args.s3_rounds} for S3), "
        "best round in brackets; a ratio is the median of the rounds' ratios.\n"
    )
    print("| measurement | SDK | baseline | ratio (target) |")
    print("| --- | --- | --- | --- |")

    def rate(seconds: list[float]) -> str:
        return f"{mib / median(seconds):.0f} MiB/s [{mib / min(seconds):.0f}]"

    if local is not None:
        print(
            f"| (a) local save, {mib:.0f} MiB, fsynced | {rate(local['sdk'])} | dd conv=fsync: {rate(local['dd'])} | "
            f"{paired(local['sdk'], local['dd']):.2f}x (≥ 0.9x) |"
        )
        print(
            f"| (a') same, without early writeback (sync_file_range off) | {rate(local['sdk_no_kick'])} | dd | "
            f"{paired(local['sdk_no_kick'], local['dd']):.2f}x |"
        )
    for snapshot, background in backgrounds.items():
        blocked, blocking = background["async_block"], background["blocking"]
        slowdown = median(t / b for t, b in zip(background["async_total"], blocking, strict=True))
        how = "copies the state" if snapshot == "copy" else "forks a copy-on-write writer"
        print(
            f"| (b) caller blocked by save(blocking=False), snapshot={snapshot!r} ({how}) | "
            f"{median(blocked) * 1000:.1f} ms [{min(blocked) * 1000:.1f}] (first save: "
            f"{background['async_first'][0] * 1000:.1f} ms) | blocking save: {median(blocking) * 1000:.0f} ms "
            f"[{min(blocking) * 1000:.0f}] | {paired(blocking[1:], blocked) * 100:.1f} % (≤ 5 %) |"
        )
        print(
            f"| (b') background save, snapshot={snapshot!r}, start to durable | "
            f"{median(background['async_total']):.2f} s [{min(background['async_total']):.2f}] | blocking save | "
            f"{slowdown:.2f}x |"
        )
    if s3 is not None:
        print(
            f"| (c) S3 upload to SeaweedFS (8 MiB parts, 10 in flight) | {rate(s3['sdk'])} | boto3 upload_file: "
            f"{rate(s3['boto3'])} | {paired(s3['sdk'], s3['boto3']):.2f}x (≥ 0.9x) |"
        )


if __name__ == "__main__":
    main()

"""bench/barrier_processes.py at a small size: every backend (torch's TCPStore, ``Worker.barrier`` on the binary under
test, ``multiprocessing.Barrier``, grpcio's echo floors on the same coordinator) runs every round with each participant
its own process. Correctness only: the release latencies are measured by ``make bench`` (bench/RESULTS.md), never
asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_backend_runs_every_round(dtr_binary: str) -> None:
    script = str(REPO / "bench" / "barrier_processes.py")
    result = subprocess.run(
        [sys.executable, script, "--processes", "3", "--rounds", "6", "--dtr", dtr_binary, "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("| 3 |") for line in lines), result.stdout
    report = json.loads(lines[-1])
    assert report["bench"] == "barrier-processes" and report["complete"] is True
    (run,) = report["runs"]
    assert run["processes"] == 3 and run["rounds"] == 6  # the first of 7 rounds is dropped
    for backend in ("tcpstore", "dtr", "floor", "echo_stream", "echo_unary"):
        # Each is a real release: after the last arrival, so positive, and well under the harness's 120 s timeout.
        assert 0 < run[f"{backend}_p50_ms"] <= run[f"{backend}_p99_ms"] < 120_000, run
    # The coordinator saw the barrier's rounds too (its own release-latency histogram).
    assert run["coordinator_release_p50_ms"] is not None and run["coordinator_release_p50_ms"] > 0

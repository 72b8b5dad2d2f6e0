"""The percentile the benchmarks report (shared by bench/barrier_processes.py and bench/barrier_vs_tcpstore.py)."""

from __future__ import annotations

import math


def percentile(values: list[float], quantile: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``quantile`` of ``values`` at or below it."""
    ordered = sorted(values)
    rank = math.ceil(quantile * len(ordered) - 1e-9)  # 0.99 * 200 may round to just above 198
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]

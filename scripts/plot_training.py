"""Trains examples/real_training_simple.py with 1, 2 and 4 workers and draws loss and held-out accuracy per epoch.

    .venv/bin/python scripts/plot_training.py [--out docs/training-curves.png] [--epochs 20]

Each run goes through the real stack: a coordinator (``dtr serve``, from ``$DTR_BIN`` or ``.build/debug/dtr``) on
free loopback ports, and ``dtrun --nproc N``. The figure in the README comes from this script; runs differ a little
from one another (the order in which ranks take shards depends on timing), so a new figure is not byte-identical.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from dtruntime import LocalCoordinator

REPO = Path(__file__).resolve().parents[1]


def train(coordinator: LocalCoordinator, workers: int, epochs: int, out: Path) -> dict:
    """One dtrun of the example; returns rank 0's summary."""
    out.mkdir(parents=True)
    command = [
        sys.executable, "-m", "dtruntime.run", "--nproc", str(workers), "--coordinator", coordinator.grpc_address,
        "--task", f"plot-{workers}", str(REPO / "examples" / "real_training_simple.py"), "--epochs", str(epochs),
        "--output-dir", str(out), "--quiet",
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    summaries = [json.loads(path.read_text()) for path in out.glob("*.json")]
    return min(summaries, key=lambda summary: summary["rank"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "training-curves.png")
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dtr-plot-") as scratch:
        binary = REPO / ".build" / "debug" / "dtr"
        with LocalCoordinator(str(binary) if binary.exists() else None, data_dir=Path(scratch) / "data") as coordinator:
            runs = {workers: train(coordinator, workers, args.epochs, Path(scratch) / f"run-{workers}") for workers in
                    (1, 2, 4)}  # fmt: skip
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    for workers, summary in runs.items():
        epochs = [record["epoch"] + 1 for record in summary["epochs"]]
        label = f"{workers} worker{'s' if workers > 1 else ''} ({summary['final_accuracy']:.1%})"
        loss_axes.plot(epochs, [record["loss"] for record in summary["epochs"]], marker="o", markersize=3, label=label)
        accuracy_axes.plot(epochs, [record["accuracy"] for record in summary["epochs"]], marker="o", markersize=3,
                           label=label)  # fmt: skip
    loss_axes.set(title="training loss (mean over the epoch's steps)", xlabel="epoch", ylabel="cross-entropy")
    loss_axes.set_yscale("log")
    accuracy_axes.set(title="held-out accuracy (359 test digits)", xlabel="epoch", ylabel="accuracy", ylim=(0.75, 1.0))
    accuracy_axes.axhline(0.95, color="grey", linestyle="--", linewidth=0.8)
    for axes in (loss_axes, accuracy_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle("examples/real_training_simple.py through dtruntime: dtrun --nproc 1, 2 and 4")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}: " + ", ".join(f"{w} workers {s['final_accuracy']:.4f}" for w, s in runs.items()))


if __name__ == "__main__":
    main()

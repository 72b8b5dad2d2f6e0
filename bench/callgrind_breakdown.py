"""Where the instructions of one heartbeat go, from the profile `dtr bench swarm heartbeat --callgrind DIR` writes of
the heartbeats at their highest rate (the report names it): the inclusive instructions of the coordinator's own
functions on a heartbeat's path, per heartbeat and per call, next to the whole process's instructions per heartbeat.

    .venv/bin/python bench/callgrind_breakdown.py DIR/callgrind.out.PID.8

Needs valgrind's `callgrind_annotate` and `swift demangle` (the Swift toolchain). Heartbeats are counted as the calls
of `Membership.onHeartbeat`: each heartbeat the engine takes makes one. The engine's turn (`takeHeartbeats`) is an
async function: the part of a drain that resumes after it yields (every 256 heartbeats) runs as a job of its own and
is missing from its row, which is exact only while drains are shorter (as at a few hundred workers); the other rows are
synchronous functions.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

# The functions shown by default: the engine's turn for the heartbeats and what it calls; the session reader's share
# (the liveness board, validation); encoding the acknowledgement's view; the failure detector's tick (four a second,
# whatever the heartbeat rate).
DEFAULT_FUNCTIONS = [
    "CoordinatorEngine.takeHeartbeats()",
    "TrainingHistory.record(task:worker:step:metrics:)",
    "Membership.onHeartbeat(_:step:metrics:arrivedAt:now:)",
    "CoordinatorEngine.outgoing(_:)",
    "SessionChannel.done(acknowledging:)",
    "CoordinatorMetrics.recordHeartbeat(at:)",
    "LivenessBoard.record(_:at:)",
    "WorkerID.init(_:field:)",
    "static Validation.metrics(_:field:)",
    "Dtruntime_V1_MembershipView.traverse<A>(visitor:)",
    "CoordinatorEngine.tick(scheduledAt:)",
    "Membership.onTick(now:arrivals:lag:)",
]
HEARTBEAT = "Membership.onHeartbeat(_:step:metrics:arrivedAt:now:)"
# `callgrind_annotate --tree=calling`: "  1,234 ( 0.5%)  *  ???:name [object]" for a function's inclusive cost, and
# "  1,234 ( 0.5%)  >   ???:name (56x) [object]" for each function it calls.
LINE = re.compile(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+([*>])\s+[^:]*:(.*?)(?: \(([\d,]+)x\))? \[[^\]]*\]$")


@dataclass
class Profile:
    total: int
    inclusive: dict[str, int]
    calls: dict[str, int]


def read(path: str) -> Profile:
    for tool, install in (("callgrind_annotate", "apt-get install valgrind"), ("swift", "the Swift toolchain")):
        if shutil.which(tool) is None:
            raise SystemExit(f"callgrind_breakdown.py needs `{tool}` on PATH ({install})")
    annotate = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--tree=calling", "--threshold=100", path],
        capture_output=True,
        text=True,
        check=True,
    )
    text = subprocess.run(
        ["swift", "demangle", "--simplified"], input=annotate.stdout, capture_output=True, text=True, check=True
    ).stdout
    total = 0
    inclusive: dict[str, int] = {}
    calls: dict[str, int] = {}
    for line in text.splitlines():
        if line.endswith("PROGRAM TOTALS"):
            total = int(line.split()[0].replace(",", ""))
            continue
        match = LINE.match(line)
        if not match:
            continue
        cost, kind, name, count = match.groups()
        if kind == "*":
            # A function listed twice (a recursive cycle's second entry) keeps its larger, outer figure.
            inclusive[name] = max(inclusive.get(name, 0), int(cost.replace(",", "")))
        elif count:
            calls[name] = calls.get(name, 0) + int(count.replace(",", ""))
    return Profile(total, inclusive, calls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", help="a callgrind profile of the heartbeats' window")
    parser.add_argument("functions", nargs="*", help="demangled names to show (default: the heartbeat's path)")
    args = parser.parse_args()
    profile = read(args.profile)
    heartbeats = profile.calls.get(HEARTBEAT, 0)
    if heartbeats == 0 or profile.total == 0:
        print(f"{args.profile}: no heartbeat handled in this profile (is it the heartbeats' window?)", file=sys.stderr)
        return 1
    print(f"{heartbeats:,} heartbeats; {profile.total / heartbeats:,.0f} instructions per heartbeat in all\n")
    print("| function | instructions per heartbeat | per call | calls |")
    print("| --- | --- | --- | --- |")
    for name in args.functions or DEFAULT_FUNCTIONS:
        if name not in profile.inclusive:
            print(f"| `{name}` | not in the profile | | |")
            continue
        cost = profile.inclusive[name]
        count = profile.calls.get(name, 0)
        per_call = f"{cost / count:,.0f}" if count else ""
        print(f"| `{name}` | {cost / heartbeats:,.0f} | {per_call} | {count:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the two cores go while a coordinator restarts under a swarm: from a system-wide profile of a `recovery` run
and the run's JSON line, each phase's CPU by process, and the coordinator's CPU by what it runs.

    perf record -a -g -F 499 -k CLOCK_MONOTONIC -o perf.data -- dtr bench swarm recovery > run.txt
    .venv/bin/python bench/perf_phases.py perf.data run.txt

Needs `perf` (apt-get install linux-perf). The phases start at the kill (`kill_monotonic_seconds`, which `-k
CLOCK_MONOTONIC` lines up with the samples): kill → restart (the coordinator is gone), restart → listening,
listening → the swarm's first connection up, → its first session back, → every worker back, and a second after. A
phase's figure for a process is the cores it used on average (samples in the phase ÷ the sampling rate ÷ the phase's
length); "idle" is the cores nobody used. The coordinator's samples are put under the first of these found from the
sampled function outwards: its own code (the modules Coordinator, RuntimeCore, DataShard, Checkpoint, Storage and
RuntimeProto, and GRDB and SQLite), the gRPC, NIO and protobuf stack, the Swift runtime and libdispatch (task
switches, allocation), and the kernel. On-CPU samples show where the CPU went, not what waited for it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

# Modules by name, as a Swift symbol's mangling starts: "$s" and the module's name with its length ("$s11Coordinator").
OWN = {"Coordinator", "RuntimeCore", "DataShard", "Checkpoint", "Storage", "RuntimeProto", "GRDB"}
STACK_PREFIXES = ("GRPC", "NIO", "_NIO")
STACK = {"SwiftProtobuf"}
MANGLED_MODULE = re.compile(r"\$s(\d+)")
CATEGORIES = ("own code", "gRPC, NIO, protobuf", "Swift runtime, libdispatch, libc", "kernel")


@dataclass
class Sample:
    pid: int
    time: float
    frames: list[str] = field(default_factory=list)


@dataclass
class Phase:
    name: str
    start: float
    end: float


def module(symbol: str) -> str | None:
    """The Swift module a mangled symbol belongs to ("$s11RuntimeCore10Membership..." is RuntimeCore's), if any."""
    match = MANGLED_MODULE.match(symbol)
    if not match:
        return None
    start = match.end()
    return symbol[start : start + int(match.group(1))]


def category(frames: list[str]) -> str:
    """The sample's category: the first frame, from the sampled function outwards, that is the coordinator's own
    code (its modules, GRDB and SQLite) or the stack's; otherwise the kernel's when the sampled function is, else the
    runtime's."""
    for frame in frames:
        name = module(frame)
        if name in OWN or frame.startswith("sqlite3"):
            return CATEGORIES[0]
        if name is not None and (name in STACK or name.startswith(STACK_PREFIXES)):
            return CATEGORIES[1]
    if frames and frames[0].startswith("[k]"):
        return CATEGORIES[3]
    return CATEGORIES[2]


def parse(lines: Iterable[str]) -> Iterable[Sample]:
    """Samples from `perf script -F pid,time,ip,sym,dso --no-demangle`: a header line "PID TIME:" (the pid padded
    with spaces), then a line per frame starting with a tab, "ADDRESS SYMBOL (DSO)", a blank line after each sample.
    Kernel frames are marked "[k]"."""
    sample: Sample | None = None
    for line in lines:
        if not line.strip():
            if sample is not None:
                yield sample
            sample = None
        elif not line.startswith("\t"):
            pid, time = line.split()[:2]
            sample = Sample(int(pid.split("/")[0]), float(time.rstrip(":")))
        elif sample is not None:
            parts = line.split(None, 1)
            rest = parts[1] if len(parts) > 1 else ""
            symbol, _, dso = rest.rpartition(" (")
            symbol = symbol or rest
            kernel = dso.startswith("[kernel")
            sample.frames.append(("[k]" if kernel else "") + symbol.split("+0x")[0])
    if sample is not None:
        yield sample


REQUIRED = (
    "kill_monotonic_seconds",
    "listening_after_kill_seconds",
    "listening_seconds",
    "first_connection_up_after_listening_seconds",
    "first_session_back_after_listening_seconds",
    "all_heartbeating_seconds",
    "bench_pid",
    "coordinator_pid",
    "probe_pid",
)


def phases(run: dict[str, float]) -> list[Phase]:
    """The run's phases on CLOCK_MONOTONIC, from its JSON line (which must have every key of ``REQUIRED``)."""
    kill = run["kill_monotonic_seconds"]
    listening = kill + run["listening_after_kill_seconds"]
    restart = listening - run["listening_seconds"]
    # A connection can be up before the ready line is read: its phase is then empty.
    up = listening + max(0.0, run["first_connection_up_after_listening_seconds"])
    first_back = max(up, listening + run["first_session_back_after_listening_seconds"])
    every_back = kill + run["all_heartbeating_seconds"]
    return [
        Phase("kill → restart", kill, restart),
        Phase("restart → listening", restart, listening),
        Phase("listening → first connection up", listening, up),
        Phase("→ first session back", up, first_back),
        Phase("→ every worker back", first_back, every_back),
        Phase("the second after", every_back, every_back + 1.0),
    ]


def table(samples: Iterable[Sample], run: dict[str, float], rate: float, cores: int) -> str:
    """A Markdown table: per phase, its length, the cores each process used, and the coordinator's split."""
    spans = phases(run)
    roles = {int(run["bench_pid"]): "swarm", int(run["coordinator_pid"]): "coordinator", int(run["probe_pid"]): "probe"}
    by_role: list[Counter[str]] = [Counter() for _ in spans]
    by_category: list[Counter[str]] = [Counter() for _ in spans]
    for sample in samples:
        for index, span in enumerate(spans):
            if span.start <= sample.time < span.end:
                role = roles.get(sample.pid, "idle" if sample.pid == 0 else "other")
                by_role[index][role] += 1
                if role == "coordinator":
                    by_category[index][category(sample.frames)] += 1
                break
    columns = ["swarm", "coordinator", "probe", "other", "idle"]
    lines = [
        "| phase | seconds | " + " | ".join(columns) + " | coordinator: " + " / ".join(CATEGORIES) + " |",
        "| --- " * (len(columns) + 3) + "|",
    ]
    for span, counts, split in zip(spans, by_role, by_category, strict=True):
        length = span.end - span.start
        if length <= 0:
            continue
        used = [counts[column] / rate / length for column in columns]
        total = sum(split.values())
        shares = " / ".join(f"{100 * split[name] / total:.0f} %" if total else "-" for name in CATEGORIES)
        lines.append(
            f"| {span.name} | {length:.3f} | " + " | ".join(f"{value:.2f}" for value in used) + f" | {shares} |"
        )
    lines.append("")
    lines.append(f"Cores used on average ({cores} in all; {rate:g} samples a second a core).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profile", help="perf.data of `perf record -a -g -k CLOCK_MONOTONIC` over the run")
    parser.add_argument("run", help="the run's output: its JSON line (the last line starting with '{') is read")
    parser.add_argument("--rate", type=float, default=499, help="perf record's -F (default 499)")
    parser.add_argument("--cores", type=int, default=2, help="the machine's cores (default 2)")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("perf_phases.py needs `perf` on PATH (apt-get install linux-perf)")
    with open(args.run, encoding="utf-8") as text:
        runs = [line for line in text if line.startswith("{")]
    if not runs:
        raise SystemExit(f"{args.run} has no JSON line: give the output of `dtr bench swarm recovery`")
    run = json.loads(runs[-1])
    missing = [key for key in REQUIRED if key not in run]
    if missing:
        raise SystemExit(
            f"the run's JSON line lacks {', '.join(missing)}: give a recovery run of this version in which every "
            "worker came back"
        )
    if run.get("problems"):
        raise SystemExit(f"the run had problems, so its phases may not be what they say: {run['problems']}")
    script = subprocess.run(
        ["perf", "script", "-i", args.profile, "-F", "pid,time,ip,sym,dso", "--no-demangle"],
        capture_output=True,
        text=True,
        check=False,
    )
    if script.returncode != 0:
        raise SystemExit(
            f"`perf script -i {args.profile}` failed ({script.stderr.strip()}): give the perf.data that "
            "`perf record -a -g -k CLOCK_MONOTONIC` wrote, read as the user who recorded it"
        )
    print(table(parse(script.stdout.splitlines()), run, args.rate, args.cores))


if __name__ == "__main__":
    main()

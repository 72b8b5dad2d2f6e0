"""``dtrun``: starts a node's training processes against a dtruntime coordinator and keeps them running.

    dtrun --nproc 4 [--coordinator HOST:PORT | --standalone] [--task NAME] [--world-size MIN[:MAX]]
          [--max-restarts 3] [--restart-window 300] [--grace-period 30] script.py [args ...]
    dtrun --nproc 4 ... -m package.module [args ...]

Unlike torchrun, which restarts every worker of the node when one fails, dtrun restarts only the child that failed
(under the same worker id, so it rejoins its task) while the others keep training. See docs/LAUNCHER.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import os
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dtruntime import validation
from dtruntime.client import DEFAULT_ADDRESS, CoordinatorClient
from dtruntime.errors import (
    CoordinatorUnavailable,
    DeadlineExceeded,
    DtrError,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from dtruntime.launcher import LocalCoordinator
from dtruntime.supervisor import ChildSpec, Output, RestartPolicy, Supervisor

EXIT_USAGE = 2
"""dtrun's exit status when it cannot start the job (bad flags, no script, no coordinator); no child ran."""
_WORKER_ID_MAX = 128


class UsageError(Exception):
    """A problem with dtrun's command line or its surroundings that stops it before any child starts."""


@dataclass(frozen=True)
class LaunchOptions:
    """dtrun's command line, checked."""

    nproc: int
    script: str
    script_args: tuple[str, ...]
    module: bool
    coordinator: str | None
    standalone: bool
    data_dir: Path | None
    task: str
    world_size: str
    worker_id_prefix: str
    policy: RestartPolicy
    grace_period: float
    connect_timeout: float

    def child_specs(self, coordinator: str) -> list[ChildSpec]:
        """The environment and command of each local rank (the same across the child's restarts)."""
        entry = ["-m", self.script] if self.module else [self.script]
        specs = []
        for rank in range(self.nproc):
            worker_id = f"{self.worker_id_prefix}-{rank}"
            env = {
                **os.environ,
                "DTR_COORDINATOR": coordinator,
                "DTR_TASK": self.task,
                "DTR_LOCAL_RANK": str(rank),
                "DTR_LOCAL_WORLD_SIZE": str(self.nproc),
                "DTR_WORLD_SIZE": self.world_size,
                "DTR_WORKER_ID": worker_id,
                "PYTHONUNBUFFERED": "1",
            }
            specs.append(ChildSpec(rank, [sys.executable, *entry, *self.script_args], env, worker_id))
        return specs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dtrun",
        description=(
            "Start NPROC training processes of one task against a dtruntime coordinator. A process that fails is "
            "restarted (same worker id, so it rejoins its task) while the others keep running; SIGINT/SIGTERM are "
            "forwarded to every process. Each process gets DTR_COORDINATOR, DTR_TASK, DTR_LOCAL_RANK, "
            "DTR_LOCAL_WORLD_SIZE, DTR_WORLD_SIZE, DTR_WORKER_ID and DTR_RESTART_COUNT."
        ),
        epilog="Several nodes: run one dtrun per node against the same --coordinator and --task (docs/LAUNCHER.md).",
        allow_abbrev=False,
    )
    parser.add_argument("--nproc", "--nproc-per-node", type=int, default=1, help="processes on this node (default 1)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help=f"the coordinator's gRPC address (default: $DTR_COORDINATOR, else {DEFAULT_ADDRESS})",
    )
    where.add_argument(
        "--standalone",
        action="store_true",
        help="start a coordinator of its own on free loopback ports for this job (needs `dtr`: $DTR_BIN or PATH)",
    )
    parser.add_argument(
        "--data-dir", type=Path, help="with --standalone: the coordinator's state directory (default: a new temp dir)"
    )
    parser.add_argument("--task", help="the task the processes join (default: the script's or module's name)")
    parser.add_argument(
        "--world-size",
        metavar="MIN[:MAX]",
        help="the task's world size across every node, or its elastic bounds (default: NPROC)",
    )
    parser.add_argument(
        "--worker-id-prefix",
        metavar="PREFIX",
        help="worker ids are PREFIX-<local rank> (default: <hostname>-<dtrun's pid>); unique per node",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=3,
        help="restarts (of any process of this dtrun) allowed within --restart-window; one more failure fails the "
        "job (default 3)",
    )
    parser.add_argument(
        "--restart-window",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="restarts older than this do not count (default 300)",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="delay before a restart, doubled for each recent restart of the same process (default 1, ±20%% jitter)",
    )
    parser.add_argument(
        "--backoff-max", type=float, default=30.0, metavar="SECONDS", help="longest restart delay (default 30)"
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="when the job stops, how long processes have to exit after SIGTERM/SIGINT before SIGKILL (default 30)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the coordinator to answer before starting anything (default 10)",
    )
    parser.add_argument(
        "-m",
        "--module",
        action="store_true",
        help="run SCRIPT as a module (python -m SCRIPT), like torchrun -m",
    )
    parser.add_argument("script", nargs="?", metavar="SCRIPT", help="the training script (or module, with -m)")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, metavar="ARGS", help="the script's arguments")
    return parser


def parse_options(args: argparse.Namespace) -> LaunchOptions:
    """Checks the command line; raises :class:`UsageError` saying what to change."""
    _check_numbers(args)
    if args.data_dir is not None and not args.standalone:
        raise UsageError("--data-dir is the state directory of a --standalone coordinator: add --standalone")
    default_task = _check_entry(args.script, module=args.module)
    if args.task is not None:
        if not validation.is_task_id(args.task):
            raise UsageError(f"--task must be 1-64 characters of [A-Za-z0-9._-], not . or .. (got {args.task!r})")
        task = args.task
    else:
        # A file name may hold characters a task name cannot.
        task = re.sub(r"[^A-Za-z0-9._-]", "-", default_task)[:64].strip(".") or "default"

    world_size = _parse_world_size(args.world_size, args.nproc)

    prefix = args.worker_id_prefix or f"{socket.gethostname()}-{os.getpid()}"
    longest = f"{prefix}-{args.nproc - 1}"
    if len(longest) > _WORKER_ID_MAX or not all(0x21 <= ord(char) <= 0x7E for char in prefix):
        raise UsageError(
            f"--worker-id-prefix makes worker ids such as {longest!r}, which are not 1-{_WORKER_ID_MAX} printable "
            "ASCII characters without spaces: choose a shorter prefix without spaces"
        )
    return LaunchOptions(
        nproc=args.nproc,
        script=args.script,
        script_args=tuple(args.script_args),
        module=args.module,
        coordinator=args.coordinator,
        standalone=args.standalone,
        data_dir=args.data_dir,
        task=task,
        world_size=world_size,
        worker_id_prefix=prefix,
        policy=RestartPolicy(
            max_restarts=args.max_restarts,
            window=args.restart_window,
            backoff=args.backoff,
            backoff_max=max(args.backoff_max, args.backoff),
        ),
        grace_period=args.grace_period,
        connect_timeout=args.connect_timeout,
    )


def _check_numbers(args: argparse.Namespace) -> None:
    if args.nproc < 1:
        raise UsageError(f"--nproc must be at least 1 (got {args.nproc})")
    if args.max_restarts < 0:
        raise UsageError(f"--max-restarts must be 0 or more (got {args.max_restarts})")
    for flag, value in (
        ("--restart-window", args.restart_window),
        ("--backoff", args.backoff),
        ("--backoff-max", args.backoff_max),
        ("--grace-period", args.grace_period),
        ("--connect-timeout", args.connect_timeout),
    ):
        if not 0 <= value < float("inf"):
            raise UsageError(f"{flag} must be a number of seconds, 0 or more (got {value})")


def _check_entry(script: str, *, module: bool) -> str:
    """Checks that the script or module exists; returns the task name it implies (its stem, or the module name)."""
    if module:
        if not _module_exists(script):
            raise UsageError(
                f"no module named {script!r} (looked in {os.getcwd()} and the Python path of {sys.executable}): "
                "check the name, run dtrun from the directory that holds it, or install its package"
            )
        return script
    path = Path(script)
    if not path.is_file():
        where = "does not exist" if not path.exists() else "is not a file"
        raise UsageError(
            f"training script {script} {where} (looked from {os.getcwd()}): give its path, or use -m for a module"
        )
    return path.stem


def _parse_world_size(value: str | None, nproc: int) -> str:
    """``N`` or ``MIN:MAX`` as the children get it in ``DTR_WORLD_SIZE``."""
    if value is None:
        return str(nproc)
    match = re.fullmatch(r"(\d+)(?::(\d+))?", value.strip())
    if not match:
        raise UsageError(f"--world-size must be N or MIN:MAX, e.g. 8 or 4:8 (got {value!r})")
    low, high = int(match[1]), int(match[2]) if match[2] else None
    if low < 1 or (high is not None and high < low):
        raise UsageError(f"--world-size needs 1 <= MIN <= MAX (got {value!r})")
    return f"{low}:{high}" if high is not None else str(low)


def _module_exists(name: str) -> bool:
    """Whether ``python -m name`` started here finds the module's top-level package (without importing anything)."""
    top = name.split(".", maxsplit=1)[0]
    if not top or top in sys.builtin_module_names:
        return bool(top)
    return importlib.machinery.PathFinder.find_spec(top, [os.getcwd(), *sys.path]) is not None


def check_coordinator(address: str, timeout: float) -> None:
    """Waits up to ``timeout`` seconds for the coordinator to answer a call; raises :class:`UsageError` if it does
    not, or if it refuses this machine's credentials."""
    deadline = time.monotonic() + timeout
    try:
        client = CoordinatorClient(address, timeout=max(0.5, min(2.0, timeout)))
    except ValueError as error:
        raise UsageError(str(error)) from None
    with client:
        while True:
            try:
                # An id no worker has: NOT_FOUND proves the coordinator is there and took the call (and its token).
                client.heartbeat(f"dtrun-probe-{socket.gethostname()}-{os.getpid()}")
                return
            except NotFound:
                return
            except (Unauthenticated, PermissionDenied) as error:
                raise UsageError(
                    f"the coordinator at {address} refused this machine's worker token ({error.message}): set "
                    "DTR_WORKER_TOKEN to its --worker-token"
                ) from None
            except (CoordinatorUnavailable, DeadlineExceeded) as error:
                if time.monotonic() >= deadline:
                    raise UsageError(
                        f"no coordinator answers at {address} (waited {timeout:g} s; {error.message}). Start one "
                        "with `dtr serve`, point dtrun at yours with --coordinator HOST:PORT or DTR_COORDINATOR, "
                        "or run `dtrun --standalone ...` to start one for this job"
                    ) from None
                time.sleep(0.2)
            except DtrError:
                return  # any other answer comes from a live coordinator


def _start_standalone(options: LaunchOptions, stack: contextlib.ExitStack, output: Output) -> str:
    """Starts ``dtr serve`` for this job (stopped with SIGTERM when ``stack`` closes); returns its gRPC address."""
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="dtrun-"))
    try:
        # Its own session: the terminal's Ctrl-C must not stop it while the children save their last checkpoint.
        coordinator = LocalCoordinator(data_dir=data_dir, start_new_session=True)
    except FileNotFoundError:
        binary = os.environ.get("DTR_BIN")
        found = f"DTR_BIN={binary} is not a file" if binary else "no `dtr` on PATH and DTR_BIN is not set"
        raise UsageError(
            f"--standalone needs the coordinator binary ({found}): build it with `swift build -c release --product "
            "dtr` and set DTR_BIN=.build/release/dtr, or put it on PATH"
        ) from None
    stack.callback(_stop_standalone, coordinator, output)
    try:
        coordinator.start()
    except (RuntimeError, TimeoutError, OSError) as error:
        raise UsageError(f"the standalone coordinator did not start: {error}") from None
    output.say(
        f"standalone coordinator: grpc {coordinator.grpc_address}, dashboard {coordinator.http_url}/, "
        f"state in {data_dir} (log: {coordinator.log_path})"
    )
    return coordinator.grpc_address


def _stop_standalone(coordinator: LocalCoordinator, output: Output) -> None:
    if coordinator.process is None or coordinator.process.poll() is not None:
        return
    try:
        status = coordinator.stop()
    except TimeoutError as error:
        output.say(f"the standalone coordinator did not stop in time and was killed: {error}")
        return
    output.say(f"standalone coordinator stopped (exit status {status}); its state stays in {coordinator.data_dir}")


def launch(options: LaunchOptions, output: Output) -> int:
    """Runs the job; returns dtrun's exit status."""
    with contextlib.ExitStack() as stack:
        if options.standalone:
            address = _start_standalone(options, stack, output)
        else:
            address = options.coordinator or os.environ.get("DTR_COORDINATOR") or DEFAULT_ADDRESS
            check_coordinator(address, options.connect_timeout)
        output.say(
            f"starting {options.nproc} process{'es' if options.nproc != 1 else ''} of task {options.task} "
            f"(world size {options.world_size}) against {address}; worker ids {options.worker_id_prefix}-<rank>"
        )
        supervisor = Supervisor(
            options.child_specs(address), options.policy, grace_period=options.grace_period, output=output
        )
        return supervisor.run()


def main(argv: Sequence[str] | None = None) -> int:
    """The ``dtrun`` console script; returns the exit status (see docs/LAUNCHER.md)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.script is None:
        parser.error("give the training script to run: dtrun [options] script.py [args ...] (or -m module)")
    output = Output(sys.stdout.buffer, sys.stderr.buffer)
    # Until the supervisor takes the signals over (and after it hands them back), SIGTERM and SIGHUP unwind like
    # Ctrl-C does, so that a --standalone coordinator (in a session of its own) is stopped rather than left behind.
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return launch(parse_options(args), output)
    except UsageError as error:
        output.say(f"error: {error}")
        return EXIT_USAGE
    except (_Interrupted, KeyboardInterrupt) as error:
        signum = error.signum if isinstance(error, _Interrupted) else signal.SIGINT
        output.say(f"stopped by {signal.Signals(signum).name}")
        return 128 + signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Interrupted(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    raise _Interrupted(signum)


if __name__ == "__main__":
    sys.exit(main())

"""``dtrun``, the launcher: real dtrun processes run real children (launcher_child.py) against the real coordinator."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, wait_until
from dtruntime import LocalCoordinator, run
from dtruntime.supervisor import RestartPolicy

CHILD = Path(__file__).with_name("launcher_child.py")


class Dtrun:
    """``python -m dtruntime.run ...`` in a child process, its standard output and error collected in the background."""

    def __init__(self, args: list[str], *, cwd: Path | None = None, command: list[str] | None = None) -> None:
        env = {key: value for key, value in os.environ.items() if key != "DTR_COORDINATOR"}
        self.process = subprocess.Popen(
            [*(command or [sys.executable, "-m", "dtruntime.run"]), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._pumps = [
            threading.Thread(target=_drain, args=(self.process.stdout, self._out), daemon=True),
            threading.Thread(target=_drain, args=(self.process.stderr, self._err), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stderr(self) -> str:
        return b"".join(self._err).decode()

    @property
    def stdout(self) -> str:
        return b"".join(self._out).decode()

    def wait(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout)
        for pump in self._pumps:
            pump.join(5)
        return code

    def send(self, signum: int) -> None:
        os.kill(self.process.pid, signum)


def _drain(pipe: Any, into: list[bytes]) -> None:
    for chunk in iter(lambda: pipe.read1(65536), b""):
        into.append(chunk)


class Records:
    """The per-run records launcher_child.py writes (``rank<R>-run<K>.json``) in a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def get(self, rank: int, run: int) -> dict[str, Any] | None:
        path = self.directory / f"rank{rank}-run{run}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def wait(self, rank: int, run: int, timeout: float = 20.0) -> dict[str, Any]:
        return wait_until(lambda: self.get(rank, run), timeout=timeout)

    def runs(self, rank: int) -> list[int]:
        return sorted(int(path.stem.split("-run")[1]) for path in self.directory.glob(f"rank{rank}-run*.json"))

    def signal(self, rank: int, run: int = 0) -> str | None:
        path = self.directory / f"rank{rank}-run{run}.signal"
        return path.read_text() if path.exists() else None

    def all(self) -> list[dict[str, Any]]:
        return [json.loads(path.read_text()) for path in self.directory.glob("*.json")]


@pytest.fixture(scope="module")
def coordinator(dtr_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCoordinator]:
    with LocalCoordinator(dtr_binary, data_dir=tmp_path_factory.mktemp("launcher-coordinator"), args=FAST) as started:
        yield started


@pytest.fixture
def records(tmp_path: Path) -> Iterator[Records]:
    """Where the children write; at the end, whatever a failed test left running is killed (by process group)."""
    found = Records(tmp_path / "records")
    yield found
    for record in found.all():
        # Only a child still running (a pid reused by some other process since must be left alone).
        if alive(record["pid"]):
            with contextlib.suppress(OSError):
                os.killpg(record["pgid"], signal.SIGKILL)


@pytest.fixture
def dtrun(coordinator: LocalCoordinator) -> Iterator[Callable[..., Dtrun]]:
    """Starts dtrun against the module's coordinator (``standalone=True``: without it); kills it at the end."""
    started: list[Dtrun] = []

    def start(*args: str, standalone: bool = False, cwd: Path | None = None, command: list[str] | None = None) -> Dtrun:
        where = [] if standalone else ["--coordinator", coordinator.grpc_address]
        launched = Dtrun([*where, *args], cwd=cwd, command=command)
        started.append(launched)
        return launched

    yield start
    for launched in started:
        if launched.process.poll() is None:
            launched.process.kill()
            launched.process.wait()


def alive(pid: int) -> bool:
    """Whether ``pid`` is still a running launcher_child.py (not a zombie, not a reused pid)."""
    try:
        return CHILD.name.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def child(records: Records, *args: str) -> list[str]:
    return [str(CHILD), "--record", str(records.directory), *args]


# MARK: environment and exit statuses


def test_each_child_gets_its_environment_and_a_clean_job_exits_0(
    dtrun: Callable[..., Dtrun], records: Records, coordinator: LocalCoordinator
) -> None:
    # The console script the SDK installs (the other tests run `python -m dtruntime.run`).
    console_script = Path(sys.executable).with_name("dtrun")
    launched = dtrun("--nproc", "2", *child(records), command=[str(console_script)])
    assert launched.wait() == 0, launched.stderr
    for rank in (0, 1):
        env = records.wait(rank, 0)["env"]
        assert env.pop("DTR_BIN") == os.environ["DTR_BIN"]  # dtrun's own environment is passed on
        assert env == {
            "DTR_COORDINATOR": coordinator.grpc_address,
            "DTR_TASK": "launcher_child",  # the script's stem
            "DTR_LOCAL_RANK": str(rank),
            "DTR_LOCAL_WORLD_SIZE": "2",
            "DTR_WORLD_SIZE": "2",  # --nproc
            "DTR_WORKER_ID": f"{socket.gethostname()}-{launched.pid}-{rank}",
            "DTR_RESTART_COUNT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    assert "child 0 (worker" in launched.stderr and "exit status 0, 0 restarts" in launched.stderr


def test_flags_set_the_task_world_size_and_worker_ids_and_m_runs_a_module(
    dtrun: Callable[..., Dtrun], records: Records
) -> None:
    args = ["--record", str(records.directory)]
    launched = dtrun(
        *("--nproc", "3", "--task", "job-7", "--world-size", "4:8", "--worker-id-prefix", "node-b"),
        *("-m", "launcher_child", *args),
        cwd=CHILD.parent,
    )
    assert launched.wait() == 0, launched.stderr
    for rank in range(3):
        env = records.wait(rank, 0)["env"]
        assert (env["DTR_TASK"], env["DTR_WORLD_SIZE"], env["DTR_LOCAL_WORLD_SIZE"]) == ("job-7", "4:8", "3")
        assert env["DTR_WORKER_ID"] == f"node-b-{rank}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing_script.py"], "training script missing_script.py does not exist"),
        (["-m", "no_such_module_here"], "no module named 'no_such_module_here'"),
        (["--data-dir", "/tmp/x", "SCRIPT"], "--data-dir is the state directory of a --standalone coordinator"),
        (["--world-size", "8:4", "SCRIPT"], "--world-size needs 1 <= MIN <= MAX (got '8:4')"),
        (["--nproc", "0", "SCRIPT"], "--nproc must be at least 1 (got 0)"),
        (["--task", "a b", "SCRIPT"], "--task must be 1-64 characters of [A-Za-z0-9._-]"),
    ],
)
def test_bad_command_lines_say_what_to_change_and_start_nothing(
    records: Records, args: list[str], message: str, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    # In this process: dtrun stops before it would start anything.
    args = [part if part != "SCRIPT" else str(CHILD) for part in args]
    assert run.main([*args, "--record", str(records.directory)]) == 2
    assert f"dtrun: error: {message}" in capfdbinary.readouterr().err.decode()
    assert records.all() == []


def test_an_unreachable_coordinator_is_reported_before_anything_starts(records: Records) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        launched = Dtrun(["--coordinator", address, "--connect-timeout", "0.5", *child(records)])
        assert launched.wait() == 2
    assert f"dtrun: error: no coordinator answers at {address}" in launched.stderr
    assert "Start one with `dtr serve`" in launched.stderr and "--standalone" in launched.stderr
    assert records.all() == []


def test_a_coordinator_that_refuses_the_worker_token_is_reported_before_anything_starts(
    records: Records, coordinator_factory: Callable[..., LocalCoordinator], monkeypatch: pytest.MonkeyPatch
) -> None:
    guarded = coordinator_factory(args=[*FAST, "--worker-token", "the-right-worker-token"])
    monkeypatch.setenv("DTR_WORKER_TOKEN", "a-wrong-worker-token")
    launched = Dtrun(["--coordinator", guarded.grpc_address, *child(records)])
    assert launched.wait() == 2
    assert f"the coordinator at {guarded.grpc_address} refused this machine's worker token" in launched.stderr
    assert "set DTR_WORKER_TOKEN to its --worker-token" in launched.stderr
    assert records.all() == []


# MARK: restarts


def test_a_child_that_always_fails_gets_exactly_max_restarts_then_the_job_fails(
    dtrun: Callable[..., Dtrun], records: Records
) -> None:
    launched = dtrun(
        *("--nproc", "2", "--max-restarts", "2", "--backoff", "0.05"),
        *child(records, "--fail-ranks", "1", "--stderr-lines", "60", "--mode", "wait"),
    )
    assert launched.wait() == 1, launched.stderr
    assert records.runs(1) == [0, 1, 2]  # two restarts, then the third failure ends the job
    assert [records.get(1, run)["env"]["DTR_RESTART_COUNT"] for run in (0, 1, 2)] == ["0", "1", "2"]
    # The other child kept running through the restarts, and was stopped with SIGTERM at the end.
    assert records.runs(0) == [0]
    assert records.signal(0) == "SIGTERM"
    err = launched.stderr
    assert "already had 2 of --max-restarts 2 restarts" in err
    assert re.search(r"job failed: child 1 \(worker \S+-1\) ended with exit status 3 after 2 restarts", err)
    # The failed run's last 50 standard error lines, after the header, and nothing older.
    report = err.split("last 50 lines of standard error of child 1")[1].splitlines()[1:51]
    assert report == [f"    rank 1 run 2 stderr line {line}" for line in range(10, 60)]


def test_the_restart_delay_doubles_per_recent_restart_with_jitter_up_to_the_cap() -> None:
    policy = RestartPolicy(backoff=0.5, backoff_max=10.0)
    rng = random.Random(7)
    for recent, base in [(0, 0.5), (1, 1.0), (2, 2.0), (4, 8.0)]:
        delays = [policy.delay(recent, rng) for _ in range(200)]
        assert all(0.8 * base <= delay <= 1.2 * base for delay in delays)
        assert len(set(delays)) > 100  # jittered
    assert all(8.0 <= policy.delay(recent, rng) <= 10.0 for recent in (5, 6, 60, 10_000))


def test_restarts_outside_the_window_do_not_count(dtrun: Callable[..., Dtrun], records: Records) -> None:
    # Each run fails 0.8 s after it started, three times; one restart is allowed per 0.5 s window: never exceeded.
    failing = child(records, "--fail-ranks", "0", "--fail-runs", "3", "--fail-after", "0.8")
    launched = dtrun("--max-restarts", "1", "--restart-window", "0.5", "--backoff", "0.05", *failing)
    assert launched.wait() == 0, launched.stderr
    assert records.runs(0) == [0, 1, 2, 3]
    assert "exit status 0, 3 restarts" in launched.stderr


def test_the_same_failures_within_the_window_fail_the_job(dtrun: Callable[..., Dtrun], records: Records) -> None:
    failing = child(records, "--fail-ranks", "0", "--fail-runs", "3", "--fail-after", "0.8")
    launched = dtrun("--max-restarts", "1", "--restart-window", "60", "--backoff", "0.05", *failing)
    assert launched.wait() == 1, launched.stderr
    assert records.runs(0) == [0, 1]
    assert "already had 1 of --max-restarts 1 restarts within the last 60 s" in launched.stderr


def test_a_child_killed_with_sigkill_is_restarted_under_its_worker_id_while_the_others_keep_running(
    dtrun: Callable[..., Dtrun], records: Records, coordinator: LocalCoordinator
) -> None:
    task = "launcher-kill-9"
    launched = dtrun("--nproc", "3", "--task", task, "--backoff", "0.1", *child(records, "--mode", "join"))
    first = [records.wait(rank, 0) for rank in range(3)]
    worker_id = first[1]["env"]["DTR_WORKER_ID"]

    os.kill(first[1]["pid"], signal.SIGKILL)
    again = records.wait(1, 1)
    assert again["env"]["DTR_WORKER_ID"] == worker_id
    assert again["env"]["DTR_RESTART_COUNT"] == "1"
    assert again["pid"] != first[1]["pid"]
    # It rejoined the same task under the same id, and is a live member of it.
    workers = {w["worker_id"]: w for w in coordinator.get_json("/api/workers")["workers"] if w["task_id"] == task}
    assert worker_id in workers and workers[worker_id]["status"] == "healthy"
    assert len(workers) == 3
    # The other two never stopped.
    assert all(alive(record["pid"]) for record in (first[0], first[2]))
    assert records.runs(0) == [0] and records.runs(2) == [0]

    # Stopping the task through the API ends every child with status 0, and dtrun with 0.
    assert coordinator.post_json(f"/api/tasks/{task}/stop")["status"] == "stopping"
    assert launched.wait() == 0, launched.stderr
    assert launched.stdout.count(": task stopped, exiting") == 3
    assert re.search(r"child 1 \(worker \S+\) failed \(signal SIGKILL \(9\)\): restarting it", launched.stderr)
    assert "exit status 0, 1 restart\n" in launched.stderr


# MARK: signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_are_forwarded_to_every_child(
    dtrun: Callable[..., Dtrun], records: Records, signum: signal.Signals
) -> None:
    launched = dtrun("--nproc", "3", *child(records, "--mode", "wait"))
    for rank in range(3):
        records.wait(rank, 0)
    launched.send(signum)
    assert launched.wait() == 128 + signum, launched.stderr
    # Each child got that signal (they are in process groups of their own: only dtrun could have sent it), and
    # exited cleanly; nothing was restarted.
    assert [records.signal(rank) for rank in range(3)] == [signum.name] * 3
    assert launched.stderr.count("exit status 0, 0 restarts") == 3
    assert f"job stopped by {signum.name}" in launched.stderr


def test_a_child_ignoring_sigterm_is_killed_after_the_grace_period(
    dtrun: Callable[..., Dtrun], records: Records
) -> None:
    launched = dtrun("--nproc", "2", "--grace-period", "1", *child(records, "--mode", "ignore"))
    pids = [records.wait(rank, 0)["pid"] for rank in range(2)]
    sent = time.monotonic()
    launched.send(signal.SIGTERM)
    assert launched.wait() == 128 + signal.SIGTERM
    assert time.monotonic() - sent >= 1.0  # it did give them the grace period
    assert not any(alive(pid) for pid in pids)
    assert "still running 1 s after SIGTERM" in launched.stderr
    assert launched.stderr.count("signal SIGKILL (9), killed by dtrun") == 2


def test_a_second_signal_kills_at_once(dtrun: Callable[..., Dtrun], records: Records) -> None:
    launched = dtrun("--nproc", "2", "--grace-period", "600", *child(records, "--mode", "ignore"))
    pids = [records.wait(rank, 0)["pid"] for rank in range(2)]
    launched.send(signal.SIGINT)
    wait_until(lambda: "got SIGINT" in launched.stderr)
    launched.send(signal.SIGINT)
    assert launched.wait(timeout=30) == 128 + signal.SIGINT  # well before the 600 s grace period
    assert not any(alive(pid) for pid in pids)
    assert "SIGINT again" in launched.stderr


# MARK: output


def test_output_lines_are_prefixed_with_the_local_rank_and_never_mixed(
    dtrun: Callable[..., Dtrun], records: Records
) -> None:
    lines = 300
    launched = dtrun("--nproc", "3", *child(records, "--chatter", str(lines)))
    assert launched.wait() == 0, launched.stderr
    line = re.compile(r"^\[(\d)\] rank=(\d) line=(\d+) x{40}$")
    for text in (launched.stdout, [t for t in launched.stderr.splitlines() if not t.startswith("dtrun: ")]):
        seen: dict[int, list[int]] = {0: [], 1: [], 2: []}
        for entry in text.splitlines() if isinstance(text, str) else text:
            match = line.match(entry)
            assert match, f"a mixed or unprefixed line: {entry!r}"
            assert match[1] == match[2]
            seen[int(match[1])].append(int(match[3]))
        assert seen == {rank: list(range(lines)) for rank in range(3)}


# MARK: --standalone


def test_standalone_starts_a_coordinator_for_the_job_and_stops_it_at_the_end(
    dtrun: Callable[..., Dtrun], records: Records
) -> None:
    launched = dtrun("--standalone", "--nproc", "2", *child(records, "--mode", "join"), standalone=True)
    found = wait_until(lambda: re.search(r"dashboard (http://127\.0\.0\.1:(\d+)/), state in (\S+) ", launched.stderr))
    url, http_port, state = found[1], int(found[2]), Path(found[3])
    try:
        for rank in range(2):
            assert records.wait(rank, 0)["env"]["DTR_TASK"] == "launcher_child"
        workers = get_json(url + "api/workers")["workers"]
        assert sorted(w["task_id"] for w in workers) == ["launcher_child", "launcher_child"]
        assert post_json(url + "api/tasks/launcher_child/stop")["status"] == "stopping"
        assert launched.wait() == 0, launched.stderr
        assert "standalone coordinator stopped (exit status 0)" in launched.stderr
        # It is gone, and its state stays where it said.
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", http_port)) != 0
        assert (state / "coordinator.sqlite").is_file()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def post_json(url: str) -> Any:
    request = urllib.request.Request(url, data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)

"""The child supervisor behind ``dtrun``: runs a node's training processes, prefixes their output, restarts the one
that failed while the others keep running, forwards signals, and stops them all when the job ends."""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

TAIL_LINES = 50
"""How many of a child's last standard error lines are kept, to print when it fails."""
MAX_LINE_BYTES = 64 * 1024
"""A longer line is passed on in pieces of this size (each with the prefix) rather than held in memory."""
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_FAILED = 1
"""dtrun's exit status when a child failed past the restart budget (a signal N makes it 128 + N)."""
_PUMP_DRAIN_TIMEOUT = 2.0


@dataclass(frozen=True)
class RestartPolicy:
    """When a failed child is restarted, and when the job gives up.

    The budget is the whole launcher's, like torchrun's ``--max-restarts`` (which counts restarts of the node's worker
    group): a failure when ``max_restarts`` restarts (of any child) already happened within the last ``window``
    seconds fails the job. A restart waits ``backoff`` seconds, doubled for each restart of the same child within the
    window, at most ``backoff_max``, with ±20 % jitter so that children that failed together do not come back
    together.
    """

    max_restarts: int = 3
    window: float = 300.0
    backoff: float = 1.0
    backoff_max: float = 30.0

    def delay(self, recent_restarts: int, rng: random.Random) -> float:
        """Seconds before the next restart of a child that was restarted ``recent_restarts`` times in the window."""
        base = min(self.backoff_max, self.backoff * 2.0 ** min(recent_restarts, 32))
        return min(self.backoff_max, base * rng.uniform(0.8, 1.2))


@dataclass(frozen=True)
class ChildSpec:
    """One local training process: its command and environment (``DTR_RESTART_COUNT`` is added per run)."""

    local_rank: int
    command: Sequence[str]
    env: Mapping[str, str]
    worker_id: str


class Output:
    """Writes whole lines from every child, and dtrun's own messages, so that no two are ever mixed within a line.

    One lock covers both streams, so lines stay whole also when standard output and error go to the same file.
    A closed output (``dtrun ... | head``) drops the lines instead of blocking the children.
    """

    def __init__(self, stdout: BinaryIO, stderr: BinaryIO) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self._lock = threading.Lock()

    def write(self, stream: BinaryIO, data: bytes) -> None:
        with self._lock:
            try:
                stream.write(data)
                stream.flush()
            except (OSError, ValueError):
                pass

    def say(self, message: str) -> None:
        """A message of dtrun itself, on standard error, each line starting with ``dtrun:``."""
        text = "".join(f"dtrun: {line}\n" for line in message.splitlines())
        self.write(self.stderr, text.encode(errors="replace"))


def describe_exit(returncode: int) -> str:
    """``exit status 3`` or ``signal SIGKILL (9)``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "signal"
        return f"signal {name} ({-returncode})"
    return f"exit status {returncode}"


@dataclass(frozen=True)
class _Exited:
    """Posted by a run's waiter thread once the process ended and its output was drained."""

    child: _Child
    run: _Run
    returncode: int


class _Run:
    """One process of a child, in a process group of its own, with its output pumps and its standard error's tail."""

    def __init__(
        self, child: _Child, restart_count: int, output: Output, events: queue.SimpleQueue[_Exited | int]
    ) -> None:
        spec = child.spec
        env = {**spec.env, "DTR_RESTART_COUNT": str(restart_count)}
        # A session of its own (as torchrun does): the terminal's Ctrl-C reaches dtrun only, which forwards it, and a
        # signal to the group also reaches what the child started (data loader workers, ...).
        self.process = subprocess.Popen(
            list(spec.command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.started = time.monotonic()
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._tail_lock = threading.Lock()
        prefix = f"[{spec.local_rank}] ".encode()
        assert self.process.stdout is not None and self.process.stderr is not None
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.process.stdout, output, output.stdout, prefix, False)),
            threading.Thread(target=self._pump, args=(self.process.stderr, output, output.stderr, prefix, True)),
        ]
        for pump in self._pumps:
            pump.daemon = True
            pump.start()
        threading.Thread(target=self._wait, args=(child, events), daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self) -> list[str]:
        with self._tail_lock:
            return list(self._tail)

    def send(self, signum: int) -> None:
        """Signals the run's process group (also after the child itself exited: stragglers it left in its group)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
            os.killpg(self.process.pid, signum)

    def _pump(self, pipe: BinaryIO, output: Output, stream: BinaryIO, prefix: bytes, keep_tail: bool) -> None:
        with pipe:
            while chunk := pipe.readline(MAX_LINE_BYTES):
                line = chunk if chunk.endswith(b"\n") else chunk + b"\n"
                output.write(stream, prefix + line)
                if keep_tail:
                    with self._tail_lock:
                        self._tail.append(line.decode(errors="replace").rstrip("\n"))

    def _wait(self, child: _Child, events: queue.SimpleQueue[_Exited | int]) -> None:
        returncode = self.process.wait()
        # Its last lines come before dtrun's message about its exit. Bounded: a grandchild that outlives the child
        # may hold the pipes open.
        for pump in self._pumps:
            pump.join(_PUMP_DRAIN_TIMEOUT)
        events.put(_Exited(child, self, returncode))


@dataclass(eq=False)
class _Child:
    """A local rank across its restarts."""

    spec: ChildSpec
    run: _Run | None = None
    restarts: int = 0
    restart_times: collections.deque[float] = field(default_factory=collections.deque)
    restart_at: float | None = None
    returncode: int | None = None
    tail: list[str] = field(default_factory=list)
    killed: bool = False

    @property
    def name(self) -> str:
        return f"child {self.spec.local_rank} (worker {self.spec.worker_id})"

    @property
    def active(self) -> bool:
        """Running, or waiting to be restarted."""
        return self.run is not None or self.restart_at is not None


@dataclass
class _Stop:
    """The job is ending: the children got ``signum`` and get SIGKILL at ``deadline``."""

    signum: int
    deadline: float
    killed: bool = False


class Supervisor:
    """Runs the children of one ``dtrun`` until every one finished, the job failed, or dtrun was signalled.

    :meth:`run` returns dtrun's exit status: 0 when every child exited 0, 1 when one failed past the restart budget
    (the others get SIGTERM, then SIGKILL after ``grace_period``), 128 + N when signal N stopped the job (forwarded to
    every child, SIGKILL after ``grace_period``; a second signal sends SIGKILL at once).
    """

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        policy: RestartPolicy,
        *,
        grace_period: float,
        output: Output,
        rng: random.Random | None = None,
    ) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._policy = policy
        self._grace = grace_period
        self._output = output
        self._rng = rng or random.Random()
        self._events: queue.SimpleQueue[_Exited | int] = queue.SimpleQueue()
        self._restart_times: collections.deque[float] = collections.deque()
        self._stop: _Stop | None = None
        self._signal: int | None = None
        self._failed: _Child | None = None

    def run(self) -> int:
        with self._signals_forwarded():
            for child in self._children:
                if not self._start(child):
                    break
            self._loop()
        return self._finish()

    # MARK: the loop

    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            for child in self._children:
                if child.restart_at is not None and child.restart_at <= now and self._stop is None:
                    child.restart_at = None
                    self._start(child)
            if self._stop is not None and not self._stop.killed and self._stop.deadline <= now:
                self._kill_all(f"still running {self._grace:g} s after {signal.Signals(self._stop.signum).name}")
            if not any(child.active for child in self._children):
                return
            try:
                event = self._events.get(timeout=self._next_timer(now))
            except queue.Empty:
                continue
            if isinstance(event, _Exited):
                self._on_exit(event)
            else:
                self._on_signal(event)

    def _next_timer(self, now: float) -> float | None:
        timers = [child.restart_at for child in self._children if child.restart_at is not None]
        if self._stop is not None and not self._stop.killed:
            timers.append(self._stop.deadline)
        return max(0.0, min(timers) - now) if timers else None

    def _start(self, child: _Child) -> bool:
        try:
            child.run = _Run(child, child.restarts, self._output, self._events)
        except OSError as error:
            self._output.say(f"cannot start {child.name}: {error}")
            child.returncode = EXIT_FAILED
            self._fail(child)
            return False
        return True

    def _on_exit(self, event: _Exited) -> None:
        child = event.child
        if child.run is not event.run:
            return
        child.run = None
        child.returncode = event.returncode
        child.tail = event.run.tail()
        if self._stop is not None:
            return
        if event.returncode == 0:
            self._output.say(f"{child.name} finished (exit status 0)")
            return
        # What the failed run left in its process group must not run alongside its replacement.
        event.run.send(signal.SIGKILL)
        now = time.monotonic()
        for times in (self._restart_times, child.restart_times):
            while times and times[0] <= now - self._policy.window:
                times.popleft()
        budget = self._policy.max_restarts
        if len(self._restart_times) >= budget:
            self._output.say(
                f"{child.name} failed ({describe_exit(event.returncode)}), and the job already had "
                f"{len(self._restart_times)} of --max-restarts {budget} restarts within the last "
                f"{self._policy.window:g} s: stopping the job"
            )
            self._fail(child)
            return
        delay = self._policy.delay(len(child.restart_times), self._rng)
        self._restart_times.append(now)
        child.restart_times.append(now)
        child.restarts += 1
        child.restart_at = now + delay
        self._output.say(
            f"{child.name} failed ({describe_exit(event.returncode)}): restarting it in {delay:.1f} s "
            f"(its restart {child.restarts}; {len(self._restart_times)} of --max-restarts {budget} used within the "
            f"last {self._policy.window:g} s)"
        )

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._stop is None:
            self._signal = signum
            self._output.say(
                f"got {name}: forwarding it to the children; SIGKILL to those still running in {self._grace:g} s "
                f"(send {name} again to kill them now)"
            )
            self._begin_stop(signum)
        elif not self._stop.killed:
            self._signal = self._signal or signum
            self._kill_all(f"{name} again")

    # MARK: ending

    def _fail(self, child: _Child) -> None:
        self._failed = child
        lines = child.tail
        if lines:
            self._output.say(f"last {len(lines)} lines of standard error of {child.name}:")
            self._output.write(self._output.stderr, "".join(f"    {line}\n" for line in lines).encode())
        self._begin_stop(signal.SIGTERM)

    def _begin_stop(self, signum: int) -> None:
        self._stop = _Stop(signum, time.monotonic() + self._grace)
        for child in self._children:
            child.restart_at = None
            if child.run is not None:
                child.run.send(signum)

    def _kill_all(self, why: str) -> None:
        assert self._stop is not None
        self._stop.killed = True
        running = [child for child in self._children if child.run is not None]
        if running:
            self._output.say(f"SIGKILL to {', '.join(child.name for child in running)}: {why}")
        for child in running:
            child.killed = True
            assert child.run is not None
            child.run.send(signal.SIGKILL)

    def _finish(self) -> int:
        for child in self._children:
            status = "not started" if child.returncode is None else describe_exit(child.returncode)
            killed = ", killed by dtrun" if child.killed else ""
            plural = "" if child.restarts == 1 else "s"
            self._output.say(f"{child.name}: {status}{killed}, {child.restarts} restart{plural}")
        if self._failed is not None:
            failed = self._failed
            status = describe_exit(failed.returncode) if failed.returncode is not None else "did not start"
            self._output.say(
                f"job failed: {failed.name} ended with {status} after {failed.restarts} restarts (its standard error's "
                "last lines are above); fix the cause, or allow more with --max-restarts / a shorter --restart-window"
            )
            return EXIT_FAILED
        if self._signal is not None:
            self._output.say(f"job stopped by {signal.Signals(self._signal).name}")
            return 128 + self._signal
        return 0

    @contextlib.contextmanager
    def _signals_forwarded(self) -> Iterator[None]:
        """While the children run, SIGINT/SIGTERM/SIGHUP become events of the loop (the handler only enqueues: the
        queue's put is reentrant, so this is safe in a signal handler)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            signum: signal.signal(signum, lambda signum, _frame: self._events.put(signum))
            for signum in FORWARDED_SIGNALS
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

"""``LocalCoordinator``: runs a ``dtr serve`` process for scripts, examples and tests."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

_READY = re.compile(r"^dtr ready grpc=(?P<grpc>\S+):(?P<grpc_port>\d+) http=(?P<http>\S+):(?P<http_port>\d+)")


def find_dtr_binary(binary: str | os.PathLike[str] | None = None) -> str:
    """The ``dtr`` executable: the argument, else ``$DTR_BIN``, else ``dtr`` on ``PATH``."""
    candidate = binary or os.environ.get("DTR_BIN") or shutil.which("dtr")
    if not candidate or not Path(candidate).is_file():
        raise FileNotFoundError(
            f"dtr binary not found ({candidate or 'not on PATH'}): build it with `swift build` and pass "
            "binary=..., or set DTR_BIN=.build/debug/dtr"
        )
    return str(candidate)


class LocalCoordinator:
    """A coordinator child process (``dtr serve``) on loopback, by default on free ports.

    >>> with LocalCoordinator(data_dir="/tmp/dtr") as coordinator:
    ...     Worker(coordinator.grpc_address)

    Its log (standard error) goes to ``<data_dir>/coordinator.log``. With ``start_new_session=True`` it runs in a
    session of its own, out of reach of the terminal's Ctrl-C. ``kill()`` sends SIGKILL (a crash);
    ``stop()`` sends SIGTERM (graceful shutdown) and returns the exit status.
    """

    def __init__(
        self,
        binary: str | os.PathLike[str] | None = None,
        *,
        data_dir: str | os.PathLike[str],
        grpc_port: int = 0,
        http_port: int = 0,
        host: str = "127.0.0.1",
        args: Sequence[str] = (),
        startup_timeout: float = 60.0,
        ca_file: str | os.PathLike[str] | None = None,
        start_new_session: bool = False,
    ) -> None:
        self.binary = find_dtr_binary(binary)
        # A coordinator started with --tls-cert: its HTTP API is HTTPS, verified with this CA.
        self._ssl = ssl.create_default_context(cafile=os.fspath(ca_file)) if ca_file is not None else None
        self.data_dir = Path(data_dir)
        self.host = host
        self._ports = (grpc_port, http_port)
        self._args = list(args)
        self._startup_timeout = startup_timeout
        # A session of its own keeps the terminal's Ctrl-C (sent to the foreground process group) from reaching it, so
        # its owner decides when it stops (dtrun --standalone stops it after the workers).
        self._new_session = start_new_session
        self.process: subprocess.Popen[str] | None = None
        self.grpc_port = 0
        self.http_port = 0

    @property
    def log_path(self) -> Path:
        return self.data_dir / "coordinator.log"

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{'https' if self._ssl else 'http'}://{self.host}:{self.http_port}"

    def start(self) -> LocalCoordinator:
        """Starts the process and waits until it prints its ``dtr ready`` line."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary,
            "serve",
            "--host",
            self.host,
            "--grpc-port",
            str(self._ports[0]),
            "--http-port",
            str(self._ports[1]),
            "--data-dir",
            str(self.data_dir),
            *self._args,
        ]
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=self._new_session
            )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(self.process, lines), daemon=True).start()
        try:
            while True:
                line = lines.get(timeout=self._startup_timeout)
                if line is None:
                    code = self.process.wait()
                    raise RuntimeError(f"dtr serve exited with status {code} before it was ready:\n{self._log_tail()}")
                match = _READY.match(line)
                if match:
                    self.grpc_port = int(match["grpc_port"])
                    self.http_port = int(match["http_port"])
                    return self
        except queue.Empty:
            self.kill()
            raise TimeoutError(
                f"dtr serve was not ready within {self._startup_timeout}s:\n{self._log_tail()}"
            ) from None

    def get_json(self, path: str, *, token: str | None = None) -> Any:
        """GETs an HTTP API path (e.g. ``/api/workers``) and decodes the JSON body, also for 4xx answers; ``token`` is
        the coordinator's admin token, if it has one."""
        request = urllib.request.Request(self.http_url + path, headers=_authorization(token))
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._ssl) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def post_json(self, path: str, body: Any = None, *, token: str | None = None) -> Any:
        """POSTs a JSON body to an HTTP API path (e.g. ``/api/tasks``) and decodes the answer, also for 4xx answers."""
        request = urllib.request.Request(
            self.http_url + path,
            data=json.dumps({} if body is None else body).encode(),
            headers={"Content-Type": "application/json", **_authorization(token)},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10, context=self._ssl) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def kill(self) -> None:
        """SIGKILL: the coordinator dies without any chance to clean up."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then waits for the graceful shutdown; returns the exit status."""
        assert self.process is not None, "not started"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise TimeoutError(f"dtr serve did not shut down within {timeout}s:\n{self._log_tail()}") from None
        return self.process.returncode

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> LocalCoordinator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process and self.process.poll() is None:
            self.stop()


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    """Reads the child's standard output so it never blocks on a full pipe; None marks its end."""
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _authorization(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}

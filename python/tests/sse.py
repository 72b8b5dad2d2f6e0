"""A server-sent events client on a raw socket, for protocol-level tests of ``GET /api/events``: it sees exactly what
the coordinator writes (comments and ``retry`` lines included), can stop reading to play a slow client, and can
shrink its receive buffer so that "stopped reading" fills up quickly."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Event:
    """One event: ``id`` (None when the event has no ``id:`` line), ``type`` and the parsed ``data``."""

    id: int | None
    type: str
    data: Any


@dataclass
class Response:
    """An HTTP response head and what came of its body."""

    status: int
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class EventStream:
    """``GET <path>`` on ``base_url``; with ``read`` a background thread parses the events as they arrive.

    ``receive_buffer`` (bytes) shrinks the socket's receive buffer before connecting: with ``read=False`` the client
    then holds only that much and the coordinator's writes back up at once, like a browser tab that froze."""

    base_url: str
    path: str = "/api/events"
    headers: dict[str, str] = field(default_factory=dict)
    read: bool = True
    receive_buffer: int | None = None
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    response: Response | None = None
    ended: bool = False
    error: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        self._lock = threading.Condition()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        self.sock.settimeout(30)
        self.sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {parts.netloc}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        if self.read:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    # MARK: Reading

    def _run(self) -> None:
        try:
            self._read_all()
        except OSError as error:
            self.error = repr(error)
        finally:
            with self._lock:
                self.ended = True
                self._lock.notify_all()

    def _read_all(self) -> None:
        reader = self.sock.makefile("rb")
        status_line = reader.readline().decode()
        if not status_line:
            return
        headers: dict[str, str] = {}
        while (line := reader.readline().decode().rstrip("\r\n")) != "":
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        response = Response(int(status_line.split()[1]), headers)
        with self._lock:
            self.response = response
            self._lock.notify_all()
        chunked = headers.get("transfer-encoding") == "chunked"
        if response.status != 200 or not headers.get("content-type", "").startswith("text/event-stream"):
            response.body = self._body(reader, headers, chunked)
            return
        pending = b""
        for chunk in self._chunks(reader) if chunked else iter(lambda: reader.read1(65536), b""):
            pending += chunk
            while b"\n\n" in pending:
                block, pending = pending.split(b"\n\n", 1)
                self._block(block.decode())

    @staticmethod
    def _chunks(reader: Any) -> Any:
        while True:
            size_line = reader.readline()
            if not size_line:
                return
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return
            data = reader.read(size)
            reader.readline()
            yield data

    def _body(self, reader: Any, headers: dict[str, str], chunked: bool) -> bytes:
        if chunked:
            return b"".join(self._chunks(reader))
        return reader.read(int(headers.get("content-length", "0")))

    def _block(self, block: str) -> None:
        event_id: int | None = None
        event_type = "message"
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith(":"):
                with self._lock:
                    self.comments.append(line[1:].strip())
                    self._lock.notify_all()
            elif line.startswith("retry: "):
                self.retry = int(line[len("retry: ") :])
            elif line.startswith("id: "):
                event_id = int(line[len("id: ") :])
            elif line.startswith("event: "):
                event_type = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        if data:
            assert len(data) == 1, f"one data line per event, got {block!r}"
            with self._lock:
                self.events.append(Event(event_id, event_type, json.loads(data[0])))
                self._lock.notify_all()

    # MARK: Waiting

    def wait_for(self, predicate: Callable[[EventStream], Any], timeout: float = 15.0) -> Any:
        """Waits until ``predicate(self)`` is truthy (checked whenever something arrives) and returns its value."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not (value := predicate(self)):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.ended and not predicate(self)):
                    raise AssertionError(
                        f"not met within {timeout}s (ended={self.ended}, error={self.error}); "
                        f"status {self.response and self.response.status}, events: {self.events[-5:]}"
                    )
                self._lock.wait(min(remaining, 0.5))
            return value

    def wait_for_event(self, predicate: Callable[[Event], bool], timeout: float = 15.0) -> Event:
        """The first event (seen or to come) that satisfies ``predicate``."""
        return self.wait_for(lambda stream: next((e for e in stream.events if predicate(e)), None), timeout)

    def wait_for_response(self, timeout: float = 15.0) -> Response:
        return self.wait_for(lambda stream: stream.response, timeout)

    def wait_until_ended(self, timeout: float = 15.0) -> None:
        self.wait_for(lambda stream: stream.ended, timeout)

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def worker_changes(events: list[Event]) -> list[tuple[str, str]]:
    """(worker id, change) of the ``worker`` events."""
    return [(e.data["worker"]["worker_id"], e.data["change"]) for e in events if e.type == "worker"]

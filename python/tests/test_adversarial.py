"""Hostile or buggy clients against the real coordinator on loopback (issue #13): what they send must not forge logs,
break reads or take the coordinator down. Each test is bounded and takes seconds."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

from conftest import DEAD_AFTER, wait_until, workers_by_id
from dtruntime import CheckpointManager, CoordinatorClient, DatasetRegistry
from dtruntime.client import heartbeat_request
from dtruntime.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    WorkerIdInUse,
    WorkerSecretWrong,
)
from dtruntime.v1 import coordinator_pb2 as pb
from dtruntime.v1 import coordinator_pb2_grpc as pb_grpc


def test_control_characters_a_client_sends_cannot_forge_log_lines(coordinator_factory):
    coordinator = coordinator_factory(args=["--log-format", "text"])
    forged = "done\n2026-12-02T00:00:00.000Z info dtr: checkpoint committed checkpoint_id=x\x1b[2J\u202eexe.gnp"
    with CoordinatorClient(coordinator.grpc_address) as client:
        client.register_worker("mallory", "127.0.0.1", 7000)
        client.deregister_worker("mallory", forged)
    coordinator.stop()
    log = coordinator.log_path.read_text()
    lines = [line for line in log.splitlines() if "mallory" in line and "deregistered" in line]
    assert len(lines) == 1, log
    assert "\\n2026-12-02T00:00:00.000Z info dtr: checkpoint committed" in lines[0]
    assert "\\u{1B}[2J\\u{202E}exe.gnp" in lines[0]
    assert "\x1b" not in log and "\u202e" not in log
    assert not any(line.startswith("2026-12-02T00:00:00.000Z") for line in log.splitlines()), "no forged line"


def test_a_deeply_nested_task_config_is_refused_and_reads_keep_working(coordinator_factory):
    coordinator = coordinator_factory()
    deep: object = 1
    for _ in range(508):
        deep = [deep]
    refused = coordinator.post_json("/api/tasks", {"name": "deep", "config": {"x": deep}})
    assert refused["error"]["code"] == "invalid_argument"
    assert "must nest at most 32 levels" in refused["error"]["message"]
    nested: object = 1
    for _ in range(31):
        nested = {"a": nested}
    assert coordinator.post_json("/api/tasks", {"name": "fine", "config": nested})["status"] == "pending"
    assert [task["task_id"] for task in coordinator.get_json("/api/tasks")["tasks"]] == ["fine"]
    assert coordinator.get_json("/api/dashboard")["tasks"]["tasks"][0]["config"] == nested


def test_one_client_address_cannot_hold_every_http_connection(coordinator_factory):
    coordinator = coordinator_factory(args=["--http-max-connections-per-client", "20", "--http-rate-limit", "0"])
    sockets = []
    try:
        # 60 connections from one address (127.0.0.2, so that this test's own requests from 127.0.0.1 come from
        # another client), headers never finished: 20 are held, the other 40 closed at once.
        for _ in range(60):
            sock = socket.create_connection(
                ("127.0.0.1", coordinator.http_port), timeout=5, source_address=("127.0.0.2", 0)
            )
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
            sockets.append(sock)
        wait_until(lambda: sum(closed(sock) for sock in sockets) >= 40, timeout=10)
        assert sum(closed(sock) for sock in sockets) == 40, "the 20 within the cap stay open (idle timeout is 30 s)"
        # Another address is served as usual.
        assert coordinator.get_json("/api/health")["status"] == "ok"
        # Once the address closes its connections (the server notices at once), it may connect again.
        for sock in sockets:
            sock.close()
        sockets.clear()

        def served_again() -> bool:
            try:
                with socket.create_connection(
                    ("127.0.0.1", coordinator.http_port), timeout=5, source_address=("127.0.0.2", 0)
                ) as again:
                    again.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return again.recv(64).startswith(b"HTTP/1.1 200")
            except OSError:
                return False

        wait_until(served_again, timeout=10)
    finally:
        for sock in sockets:
            sock.close()


def test_http_connections_that_send_nothing_are_closed_after_the_idle_timeout(coordinator_factory):
    coordinator = coordinator_factory(args=["--http-idle-timeout", "1s"])
    unfinished = socket.create_connection(("127.0.0.1", coordinator.http_port), timeout=5)
    trickler = socket.create_connection(("127.0.0.1", coordinator.http_port), timeout=5)
    events = socket.create_connection(("127.0.0.1", coordinator.http_port), timeout=5)
    try:
        # An event stream being answered is not idle, however long nothing happens.
        events.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert events.recv(4096).startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream")
        unfinished.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        # A client that stops sending its body keeps the connection only while it sends something.
        trickler.sendall(b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        wait_until(lambda: closed(unfinished) and closed(trickler), timeout=10)
        assert coordinator.get_json("/api/tasks") == {"tasks": []}, "the unfinished POST changed nothing"
        time.sleep(1.5)
        assert not closed(events), "the event stream is still open after more than the idle timeout"
    finally:
        for sock in (unfinished, trickler, events):
            sock.close()


def closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (a read returns end of file or fails)."""
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_pending_checkpoints_are_capped_and_old_aborted_ones_are_forgotten(coordinator_factory):
    # The default timeouts: the worker sends no heartbeats while it saves.
    args = ["--checkpoint-max-pending", "4"]
    coordinator = coordinator_factory(args=args)
    metadata = {f"k{i}": "x" * 1024 for i in range(8)}
    with CoordinatorClient(coordinator.grpc_address) as client:
        epoch = client.register_worker("mallory", "127.0.0.1", 7000).view.membership_epoch

        def save(step: int) -> str:
            ticket = client.save_checkpoint("mallory", membership_epoch=epoch, step=step, metadata=metadata)
            return ticket.checkpoint_id

        opened = [save(step) for step in range(1, 5)]
        with pytest.raises(ResourceExhausted, match=r"already has 4 checkpoints pending \(steps 1, 2, 3, 4\)"):
            save(5)
        assert len(coordinator.get_json("/api/checkpoints")["checkpoints"]) == 4, "the refusal changed nothing"
        # Aborting one makes room; 80 open-and-abort rounds leave the newest 64 records, without their metadata.
        for checkpoint_id in opened:
            client.report_checkpoint_part("mallory", checkpoint_id, failure="test")
        for step in range(5, 85):
            client.report_checkpoint_part("mallory", save(step), failure="test")

    def records() -> list[dict]:
        return coordinator.get_json("/api/checkpoints")["checkpoints"]

    assert sorted(record["step"] for record in records()) == list(range(21, 85))
    assert all(record["status"] == "aborted" and not record.get("metadata") for record in records())
    coordinator.stop()
    with sqlite3.connect(coordinator.data_dir / "coordinator.sqlite") as db:
        assert db.execute("SELECT count(*) FROM checkpoint").fetchone() == (64,), "forgotten rows are deleted"
    coordinator = coordinator_factory(args=args)
    assert sorted(record["step"] for record in records()) == list(range(21, 85))


def test_far_future_epochs_are_refused_and_an_operator_can_drop_a_ledger(coordinator_factory):
    coordinator = coordinator_factory(args=[])
    DatasetRegistry(coordinator.grpc_address).register("d", total_samples=10, shard_size=1)
    with CoordinatorClient(coordinator.grpc_address) as client:
        client.register_worker("mallory", "127.0.0.1", 7000)
        assert len(client.get_shard_assignment("d", "mallory", 0).shards) == 10
        for epoch in (2**63 - 1, 2**62, 101):
            with pytest.raises(InvalidArgument, match="must be at most 100 beyond the newest epoch 0"):
                client.get_shard_assignment("d", "mallory", epoch)
        # Within the lead, a client can still open epochs no job will finish, and block the next real one...
        client.get_shard_assignment("d", "mallory", 100)
        client.get_shard_assignment("d", "mallory", 200)
        with pytest.raises(FailedPrecondition, match=r"3 epochs of d in task default are unfinished \(0, 100, 200\)"):
            client.get_shard_assignment("d", "mallory", 1)
        # ... until an operator drops one.
        assert delete(coordinator, "/api/datasets/d/ledgers/default/nope")[0] == 400
        assert delete(coordinator, "/api/datasets/d/ledgers/default/7")[0] == 404
        assert delete(coordinator, "/api/datasets/other/ledgers/default/0")[0] == 404
        status, dataset = delete(coordinator, "/api/datasets/d/ledgers/default/200")
        assert status == 200
        assert [epoch["epoch"] for epoch in dataset["tasks"][0]["epochs"]] == [0, 100]
        assert len(client.get_shard_assignment("d", "mallory", 1).shards) == 10
    # The drop is durable.
    coordinator.kill()
    coordinator = coordinator_factory(args=[])
    (listed,) = coordinator.get_json("/api/datasets")["datasets"]
    assert [epoch["epoch"] for epoch in listed["tasks"][0]["epochs"]] == [0, 1, 100]


def delete(coordinator, path: str) -> tuple[int, dict]:
    """DELETEs an HTTP API path; the status and the decoded body."""
    request = urllib.request.Request(coordinator.http_url + path, method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


# MARK: per-worker identity

SUSPECT_AFTER = 0.6  # conftest.FAST


# Timeouts long enough that a victim that calls now and then counts as heartbeating throughout the test.
PATIENT = ["--heartbeat-interval", "1s", "--suspect-after", "60s", "--dead-after", "120s"]


def test_a_worker_token_alone_cannot_act_as_another_worker(coordinator_factory):
    coordinator = coordinator_factory(args=PATIENT)
    DatasetRegistry(coordinator.grpc_address).register("d", total_samples=8, shard_size=1)
    with (
        CoordinatorClient(coordinator.grpc_address) as victim,
        CoordinatorClient(coordinator.grpc_address) as mallory,
    ):
        epoch = victim.register_worker("victim", "127.0.0.1", 7000, task_id="a", incarnation="p1").view.membership_epoch
        secret = victim.worker_secret("victim")
        assert len(secret) == 64 and int(secret, 16) >= 0, "256 bits, hex"
        shard = victim.get_shard_assignment("d", "victim", 0).shards[0]
        ticket = victim.save_checkpoint("victim", membership_epoch=epoch, step=1)
        mallory.register_worker("mallory", "127.0.0.1", 7001, task_id="b")

        def refused(call, error=WorkerSecretWrong):
            with pytest.raises(error) as raised:
                call()
            assert raised.value.code == grpc.StatusCode.PERMISSION_DENIED
            return raised.value

        message = str(refused(lambda: mallory.heartbeat("victim", step=99)))
        assert "worker victim needs its worker secret" in message and "this call carries none" in message
        refused(lambda: mallory.get_shard_assignment("d", "victim", 0))
        progress = dict(dataset="d", epoch=0, membership_epoch=epoch, shard_id=shard.shard_id)
        refused(lambda: mallory.report_shard_progress(worker_id="victim", consumed=1, **progress))
        refused(lambda: mallory.deregister_worker("victim", "taken over"))
        refused(lambda: mallory.save_checkpoint("victim", membership_epoch=epoch, step=2))
        refused(lambda: mallory.report_checkpoint_part("victim", ticket.checkpoint_id, failure="sabotage"))
        refused(lambda: mallory.load_checkpoint("victim", task_id="a", restore_data=True))
        refused(lambda: mallory.barrier_sync("sync", "victim", membership_epoch=epoch, timeout=5))
        # Its id, again or as a "restart" in its own task: the live member's id is not free (nor elsewhere: a worker id
        # names one worker of one task at a time).
        in_use = refused(lambda: mallory.register_worker("victim", "10.0.0.9", 7002, task_id="a"), WorkerIdInUse)
        assert "register it again with its worker secret" in str(in_use) and in_use.retry_after is not None
        refused(
            lambda: mallory.register_worker("victim", "10.0.0.9", 7002, task_id="a", incarnation="p2"), WorkerIdInUse
        )
        with pytest.raises(FailedPrecondition, match="already a live member of task a"):
            mallory.register_worker("victim", "10.0.0.9", 7002, task_id="b")
        # Its session stream.
        session = mallory.worker_session(iter([pb.SessionRequest(heartbeat=heartbeat_request("victim", 0, 0, None))]))
        with pytest.raises(grpc.RpcError) as broken:
            next(iter(session))
        assert broken.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert ("dtr-reason", "WORKER_SECRET_WRONG") in (broken.value.trailing_metadata() or ())
        # A guessed secret fares no better.
        mallory.adopt_worker_secret("victim", "0" * 64)
        assert "this call carries another one" in str(refused(lambda: mallory.deregister_worker("victim")))

        # The victim is unaffected: same rank, epoch, host and step; its shard untouched; its checkpoint pending.
        workers = {worker["worker_id"]: worker for worker in coordinator.get_json("/api/workers")["workers"]}
        assert workers["victim"]["status"] == "healthy" and workers["victim"]["rank"] == 0
        assert workers["victim"]["host"] == "127.0.0.1" and workers["victim"]["step"] == 0
        assert victim.heartbeat("victim").membership_epoch == epoch
        again = victim.get_shard_assignment("d", "victim", 0)
        assert again.shards[0].shard_id == shard.shard_id and again.shards[0].consumed == 0
        statuses = {c["checkpoint_id"]: c["status"] for c in coordinator.get_json("/api/checkpoints")["checkpoints"]}
        assert statuses[ticket.checkpoint_id] == "pending"

        # The same calls with the secret succeed, from any client that has it.
        assert victim.report_shard_progress(worker_id="victim", consumed=1, **progress).consumed == 1
        with CoordinatorClient(coordinator.grpc_address) as holder:
            holder.adopt_worker_secret("victim", secret)
            assert holder.heartbeat("victim", step=5).rank == 0
            assert holder.register_worker("victim", "127.0.0.1", 7000, task_id="a", incarnation="p1").view.rank == 0
            assert holder.worker_secret("victim") == secret, "the same incarnation keeps its secret"
        victim.report_checkpoint_part("victim", ticket.checkpoint_id, failure="superseded")
        with CheckpointManager(coordinator=victim, worker_id="victim", membership_epoch=epoch) as checkpoints:
            checkpoints.save({"w": b"x"}, step=3)
            assert victim.load_checkpoint("victim", restore_data=True).data_restored
        assert victim.barrier_sync("sync", "victim", membership_epoch=epoch, timeout=5).participant_count == 1
        victim.deregister_worker("victim", "done")
    workers = {worker["worker_id"]: worker for worker in coordinator.get_json("/api/workers")["workers"]}
    assert workers["victim"]["status"] == "left"


def test_restore_data_needs_a_member_of_that_task(coordinator_factory):
    coordinator = coordinator_factory(args=PATIENT)
    with CoordinatorClient(coordinator.grpc_address) as owner, CoordinatorClient(coordinator.grpc_address) as other:
        epoch = owner.register_worker("owner", "127.0.0.1", 7000, task_id="a").view.membership_epoch
        with CheckpointManager(coordinator=owner, worker_id="owner", membership_epoch=epoch) as checkpoints:
            checkpoints.save({"w": b"x"}, step=1)
        other.register_worker("outsider", "127.0.0.1", 7001, task_id="b")
        # Its own worker, of another task: not a member of a. A member of a, without its secret: refused.
        with pytest.raises(FailedPrecondition, match="needs the worker_id of a member of task a"):
            other.load_checkpoint("outsider", task_id="a", restore_data=True)
        with pytest.raises(WorkerSecretWrong):
            other.load_checkpoint("owner", task_id="a", restore_data=True)
        # Reading a manifest changes nothing and names no worker: any client may.
        assert other.load_checkpoint(task_id="a").manifest.step == 1
        assert owner.load_checkpoint("owner", restore_data=True).data_restored


def test_worker_secrets_survive_a_coordinator_restart(coordinator_factory):
    coordinator = coordinator_factory(args=PATIENT)
    with CoordinatorClient(coordinator.grpc_address) as victim:
        victim.register_worker("victim", "127.0.0.1", 7000, incarnation="p1")
        secret = victim.worker_secret("victim")
    coordinator.kill()
    with sqlite3.connect(coordinator.data_dir / "coordinator.sqlite") as db:
        (stored,) = db.execute("SELECT secret_sha256 FROM worker WHERE id = 'victim'").fetchone()
    assert stored == hashlib.sha256(secret.encode()).digest(), "only the secret's SHA-256 is stored"
    coordinator = coordinator_factory(args=PATIENT)
    with CoordinatorClient(coordinator.grpc_address) as victim, CoordinatorClient(coordinator.grpc_address) as mallory:
        victim.adopt_worker_secret("victim", secret)
        assert victim.heartbeat("victim").rank == 0, "the restored worker acts with its secret"
        with pytest.raises(WorkerSecretWrong):
            mallory.heartbeat("victim")
        with pytest.raises(WorkerIdInUse):
            mallory.register_worker("victim", "127.0.0.1", 7000, incarnation="p2")


def test_a_restarted_process_takes_its_id_back_with_the_secret_at_once_or_once_the_old_one_is_silent(
    coordinator_factory,
):
    coordinator = coordinator_factory()
    with CoordinatorClient(coordinator.grpc_address) as first, CoordinatorClient(coordinator.grpc_address) as second:
        view = first.register_worker("w", "127.0.0.1", 7000, incarnation="p1").view
        old = first.worker_secret("w")
        # A restart that proves itself (it has the old process's secret): replaces it at once, with a new secret.
        second.adopt_worker_secret("w", old)
        restarted = second.register_worker("w", "127.0.0.1", 7000, incarnation="p2").view
        assert restarted.rank == 0 and restarted.membership_epoch == view.membership_epoch + 2
        new = second.worker_secret("w")
        assert new != old
        with pytest.raises(WorkerSecretWrong):
            first.heartbeat("w")
        # A restart that cannot prove itself waits until the old process has been silent for the suspect timeout (a
        # crashed process; one that heartbeats keeps its id), then replaces it the same way.
        with CoordinatorClient(coordinator.grpc_address) as third:
            second.heartbeat("w")
            with pytest.raises(WorkerIdInUse) as in_use:
                third.register_worker("w", "127.0.0.1", 7000, incarnation="p3")
            assert 0 < in_use.value.retry_after <= SUSPECT_AFTER
            time.sleep(in_use.value.retry_after + 0.1)
            taken = third.register_worker("w", "127.0.0.1", 7000, incarnation="p3").view
            assert taken.rank == 0 and taken.membership_epoch == restarted.membership_epoch + 2
            assert third.worker_secret("w") not in ("", old, new)
            with pytest.raises(WorkerSecretWrong):
                second.heartbeat("w")


def test_sessions_naming_a_silent_worker_without_its_secret_do_not_keep_it_alive(coordinator_factory):
    # FAST timeouts: suspect after 0.6 s of silence, dead after 1.5 s.
    coordinator = coordinator_factory()
    with CoordinatorClient(coordinator.grpc_address) as victim, CoordinatorClient(coordinator.grpc_address) as mallory:
        victim.register_worker("victim", "127.0.0.1", 7000)
        registered = time.monotonic()
        # The victim goes silent. Mallory (the worker token, no secret) opens a session naming it every 0.2 s.
        stop = threading.Event()
        refusals: list[tuple[grpc.StatusCode, tuple]] = []

        def hammer() -> None:
            while not stop.is_set():
                beat = pb.SessionRequest(heartbeat=heartbeat_request("victim", 0, 0, None))
                try:
                    next(iter(mallory.worker_session(iter([beat]))))
                    refusals.append((grpc.StatusCode.OK, ()))
                except grpc.RpcError as error:
                    refusals.append((error.code(), tuple(error.trailing_metadata() or ())))
                stop.wait(0.2)

        thread = threading.Thread(target=hammer)
        thread.start()
        seen: set[str] = set()
        try:

            def dead() -> bool:
                seen.add(workers_by_id(coordinator)["victim"]["status"])
                return "dead" in seen

            wait_until(dead, timeout=DEAD_AFTER + 10, interval=0.02)
            died_after = time.monotonic() - registered
        finally:
            stop.set()
            thread.join(timeout=30)
    assert "suspect" in seen, f"the victim was suspected before it died: {seen}"
    # Dead after 1.5 s of silence; ticks every 250 ms at most, and a loaded machine adds some.
    assert died_after < DEAD_AFTER + 2.0, f"the victim died {died_after:.1f} s after its registration"
    assert len(refusals) >= 5, "mallory kept trying throughout"
    for code, trailers in refusals:
        assert code == grpc.StatusCode.PERMISSION_DENIED and ("dtr-reason", "WORKER_SECRET_WRONG") in trailers


# MARK: inbound bytes


class RawGRPCConnection:
    """One HTTP/2 connection driven by hand: it starts gRPC calls whose request message it never finishes, which
    grpcio cannot do. Headers are sent as HPACK literals; what the server sends back is only followed far enough to
    know which streams it ended (a refusal ends a stream; a message being received keeps it open) and how much it
    lets the client send (flow control)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.ended: set[int] = set()
        self._send_lock = threading.Lock()
        self._next_stream = 1
        # Flow-control windows (RFC 9113 6.9): the connection's, and each stream's beyond the initial size.
        self._windows = threading.Condition()
        self._connection_window = 65535
        self._initial_window = 65535
        self._stream_windows: dict[int, int] = {}
        self._send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self._frame(4, 0, 0, b""))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @staticmethod
    def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload

    def _send(self, data: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(data)

    def _read(self) -> None:
        def exactly(count: int) -> bytes:
            data = b""
            while len(data) < count:
                chunk = self.sock.recv(count - len(data))
                if not chunk:
                    raise EOFError
                data += chunk
            return data

        try:
            while True:
                header = exactly(9)
                length, kind, flags = int.from_bytes(header[:3], "big"), header[3], header[4]
                stream = int.from_bytes(header[5:], "big") & 0x7FFFFFFF
                payload = exactly(length)
                if kind == 4 and not flags & 1:  # SETTINGS: note the initial window size, acknowledge
                    for offset in range(0, len(payload), 6):
                        if int.from_bytes(payload[offset : offset + 2], "big") == 4:
                            size = int.from_bytes(payload[offset + 2 : offset + 6], "big")
                            with self._windows:
                                for stream_id in self._stream_windows:
                                    self._stream_windows[stream_id] += size - self._initial_window
                                self._initial_window = size
                                self._windows.notify_all()
                    self._send(self._frame(4, 1, 0, b""))
                elif kind == 8:  # WINDOW_UPDATE
                    increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
                    with self._windows:
                        if stream == 0:
                            self._connection_window += increment
                        elif stream in self._stream_windows:
                            self._stream_windows[stream] += increment
                        self._windows.notify_all()
                elif kind == 6 and not flags & 1:  # PING: answer
                    self._send(self._frame(6, 1, 0, payload))
                elif (kind == 1 and flags & 1) or kind == 3:  # HEADERS ending the stream, or RST_STREAM
                    self.ended.add(stream)
        except (OSError, EOFError):
            return

    def start(self, method: str, declared: int, sent: int) -> int:
        """Starts a call of ``method`` whose message declares ``declared`` bytes and sends ``sent`` of them; its id."""
        stream = self._next_stream
        self._next_stream += 2
        headers = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", f"/dtruntime.v1.Coordinator/{method}"),
            (":authority", f"127.0.0.1:{self.port}"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
        # Literal header fields without indexing, new names, no Huffman coding (every length is below 127).
        block = b"".join(
            b"\x00" + bytes([len(name)]) + name.encode() + bytes([len(value)]) + value.encode()
            for name, value in headers
        )
        with self._windows:
            self._stream_windows[stream] = self._initial_window
        self._send(self._frame(1, 4, stream, block))  # HEADERS, END_HEADERS
        self.send_data(stream, b"\x00" + declared.to_bytes(4, "big") + b"\x00" * sent)
        return stream

    def send_data(self, stream: int, data: bytes) -> None:
        """Sends ``data`` on ``stream`` in DATA frames of at most 16 KiB, as the flow-control windows allow."""
        view = memoryview(data)
        while view:
            with self._windows:
                if not self._windows.wait_for(
                    lambda: stream in self.ended or min(self._connection_window, self._stream_windows[stream]) > 0,
                    timeout=30,
                ):
                    raise TimeoutError(f"the server let stream {stream} send nothing for 30 s")
                if stream in self.ended:
                    return
                size = min(len(view), 16384, self._connection_window, self._stream_windows[stream])
                self._connection_window -= size
                self._stream_windows[stream] -= size
            self._send(self._frame(0, 0, stream, bytes(view[:size])))
            view = view[size:]

    def close(self) -> None:
        # Shut down first: a bare close() leaves the connection open while the reader thread blocks in recv().
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def test_one_connection_sending_half_messages_cannot_starve_the_others(coordinator_factory):
    coordinator = coordinator_factory(args=PATIENT)
    hog = RawGRPCConnection(coordinator.grpc_port)
    try:
        # Eight calls on one connection, each declaring a 64 MiB message and sending 1 KiB of it: together the whole
        # 512 MiB budget. The connection's share (128 MiB by default) holds two; the other six are refused at once.
        streams = [hog.start("RegisterWorker", 64 << 20, 1024) for _ in range(8)]
        wait_until(lambda: len(hog.ended) >= 6, timeout=10)
        time.sleep(0.3)
        assert hog.ended == set(streams[2:]), f"refused: {sorted(hog.ended)} of {streams}"
        # Another connection is served while those two are held: a registration, and a large but legal call.
        with CoordinatorClient(coordinator.grpc_address, timeout=10) as client:
            epoch = client.register_worker("w0", "127.0.0.1", 7000).view.membership_epoch
            data = b"\x01" * (32 << 20)
            payload = pb.ReducePayload(op=pb.REDUCE_OP_SUM, dtype=pb.DTYPE_FLOAT64, data=data)
            released = client.barrier_sync("big", "w0", membership_epoch=epoch, timeout=10, payload=payload)
            assert released.reduced == data, "a world of one reduces to its own payload"
        assert hog.ended == set(streams[2:]), "the two half-sent calls are still open"
    finally:
        hog.close()


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def test_oversized_heartbeats_on_many_session_streams_are_refused_before_they_take_memory(coordinator_factory):
    coordinator = coordinator_factory()
    pid = coordinator.process.pid
    with CoordinatorClient(coordinator.grpc_address) as client:
        client.register_worker("w0", "127.0.0.1", 7000)
        baseline = rss_mib(pid)
        # 8 streams at once, each a 16 MiB session message (the transport alone would take up to 65 MiB each).
        big = pb.SessionRequest(heartbeat=pb.HeartbeatRequest(worker_id="w" * (16 << 20)))
        options = [("grpc.max_send_message_length", 64 << 20)]
        channels = [grpc.insecure_channel(coordinator.grpc_address, options=options) for _ in range(8)]
        calls = [pb_grpc.CoordinatorStub(channel).WorkerSession(iter([big]), timeout=30) for channel in channels]
        peak = baseline
        for call in calls:
            with pytest.raises(grpc.RpcError) as refused:
                next(iter(call))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "the limit of a heartbeat" in (refused.value.details() or "")
            peak = max(peak, rss_mib(pid))
            # Meanwhile the coordinator serves people and workers.
            assert coordinator.get_json("/api/health")["status"] == "ok"
        assert client.register_worker("w1", "127.0.0.1", 7001).view.world_size == 2
        assert client.heartbeat("w0").rank == 0
        for channel in channels:
            channel.close()
    assert peak - baseline < 48, f"RSS grew from {baseline:.0f} to {peak:.0f} MiB while 128 MiB were sent"
    assert rss_mib(pid) - baseline < 48, "memory is back after the streams closed"


def test_memory_held_by_half_sent_messages_goes_back_once_their_calls_end(coordinator_factory):
    coordinator = coordinator_factory(args=PATIENT)
    pid = coordinator.process.pid
    with CoordinatorClient(coordinator.grpc_address) as client:
        client.register_worker("w0", "127.0.0.1", 7000)
        baseline = rss_mib(pid)
        # 8 calls on 2 connections, each a 16 MiB message of which 15 MiB arrive: the transport buffers them.
        connections = [RawGRPCConnection(coordinator.grpc_port) for _ in range(2)]
        try:
            for connection in connections:
                for _ in range(4):
                    stream = connection.start("RegisterWorker", 16 << 20, 0)
                    connection.send_data(stream, b"\x00" * (15 << 20))
            peak = wait_until(lambda: rss_mib(pid) - baseline > 96 and rss_mib(pid), timeout=20)
            assert not any(connection.ended for connection in connections), "all eight are being received"
            # Meanwhile the coordinator serves workers.
            assert client.heartbeat("w0").rank == 0
        finally:
            for connection in connections:
                connection.close()
        # The calls end with their connections; the buffers are freed, and handed back to the system.
        wait_until(lambda: rss_mib(pid) - baseline < 64, timeout=15)
        print(f"RSS: baseline {baseline:.0f} MiB, peak {peak:.0f} MiB, after {rss_mib(pid):.0f} MiB")
        assert client.heartbeat("w0").rank == 0


# MARK: big datasets

BIG_SHARDS = 1 << 23


def first_page(address: str, worker: str, secret: str) -> pb.GetShardAssignmentResponse:
    """The first page (10 shards) of ``worker``'s assignment of epoch 0 of ``huge``, asking again while the
    coordinator answers that the ledger is still being built or loaded (its UNAVAILABLE says to retry)."""
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.CoordinatorStub(channel)
        request = pb.GetShardAssignmentRequest(dataset="huge", worker_id=worker, epoch=0, max_shards=10)
        deadline = time.monotonic() + 300
        while True:
            try:
                return stub.GetShardAssignment(request, metadata=[("dtr-worker-secret", secret)], timeout=60)
            except grpc.RpcError as error:
                retry = error.code() == grpc.StatusCode.UNAVAILABLE and "retry in a few seconds" in error.details()
                if not retry or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def served_while(address: str, call, worker: str) -> object:
    """Runs ``call`` in a thread; once it has had time to reach the coordinator, a worker of another task registers
    and heartbeats. Asserts that ``call`` was still running when that worker was served, and returns its result."""
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.update(value=call()), daemon=True)
    thread.start()
    time.sleep(0.2)
    with CoordinatorClient(address) as other:
        other.register_worker(worker, "127.0.0.1", 7001, task_id=f"{worker}-task")
        other.heartbeat(worker)
    assert thread.is_alive(), "the big ledger's call answered first: the other task may have waited for it"
    thread.join(300)
    assert "value" in result, "the big ledger's call failed"
    return result["value"]


def test_a_big_ledger_is_built_and_reloaded_while_other_tasks_are_served(coordinator_factory):
    """Building an epoch's ledger of 2^23 shards, and loading it after a restart, take seconds (a debug build takes
    more): meanwhile a worker of another task registers and heartbeats, instead of waiting for it."""
    coordinator = coordinator_factory(args=PATIENT)
    DatasetRegistry(coordinator.grpc_address).register("huge", total_samples=BIG_SHARDS, shard_size=1)
    with CoordinatorClient(coordinator.grpc_address) as reader:
        reader.register_worker("reader", "127.0.0.1", 7000, task_id="big")
        secret = reader.worker_secret("reader")
    address = coordinator.grpc_address
    built = served_while(address, lambda: first_page(address, "reader", secret), "bystander")
    assert built.total_shards == BIG_SHARDS and len(built.shards) == 10

    coordinator.kill()
    coordinator = coordinator_factory(args=PATIENT)
    address = coordinator.grpc_address
    loaded = served_while(address, lambda: first_page(address, "reader", secret), "newcomer")
    assert [shard.shard_id for shard in loaded.shards] == [shard.shard_id for shard in built.shards]
    with sqlite3.connect(coordinator.data_dir / "coordinator.sqlite") as db:
        (size,) = db.execute("SELECT sum(length(payload)) FROM ledger_delta WHERE kind = 'snapshot'").fetchone()
    assert size < 2 * BIG_SHARDS, f"the ledger's snapshot is about a byte a shard: {size / BIG_SHARDS:.2f}"

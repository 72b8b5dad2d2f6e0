"""Hostile or buggy clients against the real coordinator on loopback (issue #13): what they send must not forge logs,
break reads or take the coordinator down. Each test is bounded and takes seconds."""

from __future__ import annotations

import json
import socket
import sqlite3
import urllib.error
import urllib.request

import pytest

from conftest import wait_until
from dtruntime import CoordinatorClient, DatasetRegistry
from dtruntime.errors import FailedPrecondition, InvalidArgument, ResourceExhausted


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
        # Once the address closes its connections, it may connect again.
        for sock in sockets:
            sock.close()
        sockets.clear()
        again = socket.create_connection(
            ("127.0.0.1", coordinator.http_port), timeout=5, source_address=("127.0.0.2", 0)
        )
        sockets.append(again)
        again.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert again.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        for sock in sockets:
            sock.close()


def test_http_connections_that_send_nothing_are_closed_after_the_idle_timeout(coordinator_factory):
    coordinator = coordinator_factory(args=["--http-idle-timeout", "1s"])
    unfinished = socket.create_connection(("127.0.0.1", coordinator.http_port), timeout=5)
    trickler = socket.create_connection(("127.0.0.1", coordinator.http_port), timeout=5)
    try:
        unfinished.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        # A client that stops sending its body keeps the connection only while it sends something.
        trickler.sendall(b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        wait_until(lambda: closed(unfinished) and closed(trickler), timeout=10)
        assert coordinator.get_json("/api/tasks") == {"tasks": []}, "the unfinished POST changed nothing"
    finally:
        unfinished.close()
        trickler.close()


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

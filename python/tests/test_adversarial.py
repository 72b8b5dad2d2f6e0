"""Hostile or buggy clients against the real coordinator on loopback (issue #13): what they send must not forge logs,
break reads or take the coordinator down. Each test is bounded and takes seconds."""

from __future__ import annotations

import socket

from conftest import wait_until
from dtruntime import CoordinatorClient


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

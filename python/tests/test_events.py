"""``GET /api/events`` (server-sent events) at the protocol level, against the real coordinator binary: event order and
ids, ``Last-Event-ID`` resume, ``reset`` once the replay buffer has passed a client, a slow client disconnected while
others keep receiving, tickets with an admin token, a graceful shutdown with streams open, and 50 idle streams that
change nothing about failure detection."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import test_membership
from sse import Event, EventStream, worker_changes

from conftest import FAST, sample, scrape, wait_until, workers_by_id
from dtruntime import LocalCoordinator

ADMIN_TOKEN = "events-admin-token-0123456789"


def consecutive(events: list[Event]) -> bool:
    ids = [event.id for event in events if event.id is not None]
    return ids == list(range(ids[0], ids[0] + len(ids))) if ids else True


def create_tasks(coordinator: LocalCoordinator, names: list[str], *, threads: int = 4) -> None:
    """Creates tasks through the API (each one a `task` and a `log` event), from a few threads at once."""

    def create(name: str) -> None:
        created = coordinator.post_json("/api/tasks", {"name": name})
        assert created.get("task_id") == name, created

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(create, names))


def test_events_arrive_in_order_and_a_client_resumes_with_last_event_id(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory()
    with EventStream(coordinator.http_url) as watcher:
        hello = watcher.wait_for_event(lambda e: e.type == "hello")
        response = watcher.wait_for_response()
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        assert watcher.retry == 2000
        assert hello.id is None and watcher.events[0] is hello, "hello comes first, without an id"
        assert hello.data["version"] == coordinator.get_json("/api/health")["version"]
        # The coordinator's own start-up log lines (info) were events already.
        assert len(hello.data["run_id"]) == 16 and hello.data["last_event_id"] >= 1

        worker = spawn_worker(coordinator.grpc_address, "w0", "--task", "job")
        worker.wait_for(lambda event: event["event"] == "registered")
        joined = watcher.wait_for_event(lambda e: e.type == "worker" and e.data["change"] == "joined")
        assert joined.data["worker"]["worker_id"] == "w0" and joined.data["worker"]["task_id"] == "job"
        task = watcher.wait_for_event(lambda e: e.type == "task" and e.data["task_id"] == "job")
        assert task.data["status"] == "running"
        logged = watcher.wait_for_event(lambda e: e.type == "log" and e.data["message"] == "worker joined")
        assert logged.data["metadata"]["worker_id"] == "w0" and logged.data["level"] == "info"
        # The worker reports steps and a loss every 50 ms: its metrics events are coalesced to at most 2 a second.
        metrics = watcher.wait_for_event(
            lambda e: e.type == "worker" and e.data["change"] == "metrics" and "loss" in e.data["worker"]["metrics"]
        )
        assert metrics.data["worker"]["metrics"]["loss"] > 0 and metrics.data["worker"]["step"] > 0

        # A second client connects, reads some events, and goes away.
        with EventStream(coordinator.http_url) as early:
            early.wait_for_event(lambda e: e.type == "hello")
            seen = early.wait_for_event(lambda e: e.id is not None)
        # While it is gone, things happen.
        coordinator.post_json("/api/tasks", {"name": "other"})
        spawn_worker(coordinator.grpc_address, "w1", "--task", "job").wait_for(lambda e: e["event"] == "registered")
        watcher.wait_for_event(lambda e: e.type == "worker" and e.data["worker"]["worker_id"] == "w1")
        # It reconnects with the last id it saw (as EventSource does): everything after it comes, in order, and it is
        # exactly what the client that stayed connected saw.
        with EventStream(coordinator.http_url, headers={"Last-Event-ID": str(seen.id)}) as resumed:
            resumed.wait_for_event(lambda e: e.type == "worker" and e.data["worker"]["worker_id"] == "w1")
            replay = [e for e in resumed.snapshot() if e.id is not None]
            assert resumed.events[0].type == "hello" and resumed.events[1].id == seen.id + 1
            assert consecutive(replay)
            watcher.wait_for_event(lambda e: e.id == replay[-1].id)
            stayed = {e.id: e for e in watcher.snapshot() if e.id is not None}
            assert [(e.type, e.data) for e in replay] == [(stayed[e.id].type, stayed[e.id].data) for e in replay]
        assert consecutive(watcher.snapshot()), "no id is skipped"


def test_metrics_events_are_coalesced_to_two_a_second_per_worker(coordinator_factory, spawn_worker):
    """Workers heartbeat every 200 ms and report every 50 ms: each one's metrics events stay at most 2 per second."""
    coordinator = coordinator_factory()
    with EventStream(coordinator.http_url) as watcher:
        for index in range(3):
            spawn_worker(coordinator.grpc_address, f"w{index}")
        started = time.monotonic()
        time.sleep(4)
        window = time.monotonic() - started
        metrics = [e for e in watcher.snapshot() if e.type == "worker" and e.data["change"] == "metrics"]
        for index in range(3):
            count = len([e for e in metrics if e.data["worker"]["worker_id"] == f"w{index}"])
            assert 2 <= count <= 2 * window + 1, f"w{index}: {count} metrics events in {window:.1f}s"


def test_reset_once_the_replay_buffer_has_passed_the_client(coordinator_factory):
    coordinator = coordinator_factory(args=[*FAST, "--events-buffer", "16", "--http-rate-limit", "0"])
    # The dashboard's way in: a snapshot, then the events after its event_id.
    snapshot = coordinator.get_json("/api/dashboard")
    with EventStream(coordinator.http_url, f"/api/events?since={snapshot['event_id']}") as fresh:
        hello = fresh.wait_for_event(lambda e: e.type == "hello")
        assert hello.data["last_event_id"] >= snapshot["event_id"]
        create_tasks(coordinator, ["a"])
        created = fresh.wait_for_event(lambda e: e.type == "task" and e.data["task_id"] == "a")
        assert created.id > snapshot["event_id"] and not [e for e in fresh.events if e.type == "reset"]
    # 20 more events than the buffer holds pass while nobody listens.
    create_tasks(coordinator, [f"t{index}" for index in range(20)])
    latest = coordinator.get_json("/api/dashboard")["event_id"]
    assert latest >= created.id + 40
    with EventStream(coordinator.http_url, f"/api/events?since={created.id}") as late:
        reset = late.wait_for_event(lambda e: e.type == "reset")
        assert [e.type for e in late.events[:2]] == ["hello", "reset"] and reset.id is None
        assert "no longer buffered" in reset.data["reason"] and "GET /api/dashboard" in reset.data["reason"]
        create_tasks(coordinator, ["after-reset"])
        after = late.wait_for_event(lambda e: e.type == "task")
        assert after.id > latest and after.data["task_id"] == "after-reset", "then only new events"
    # Within the buffer, a resume still works; an id from another run (or the future) resets.
    with EventStream(coordinator.http_url, f"/api/events?since={latest - 3}") as recent:
        recent.wait_for(lambda s: len([e for e in s.events if e.id is not None]) >= 3)
        assert [e.id for e in recent.events[1:4]] == [latest - 2, latest - 1, latest]
    with EventStream(coordinator.http_url, "/api/events?since=999999") as other_run:
        reason = other_run.wait_for_event(lambda e: e.type == "reset").data["reason"]
        assert "not from this run" in reason
    for query in ["since=-1", "since=abc"]:
        with EventStream(coordinator.http_url, f"/api/events?{query}") as bad:
            bad.wait_until_ended()
            assert bad.response is not None and bad.response.status == 400
            assert "since must be an event id" in json.loads(bad.response.body)["error"]["message"]


def test_a_slow_client_is_disconnected_while_another_keeps_receiving(coordinator_factory):
    coordinator = coordinator_factory(args=[*FAST, "--http-rate-limit", "0"])
    with (
        EventStream(coordinator.http_url) as fast,
        EventStream(coordinator.http_url, read=False, receive_buffer=4096) as slow,
    ):
        fast.wait_for_event(lambda e: e.type == "hello")
        wait_until(lambda: sample(scrape(coordinator), "dtr_event_clients") == 2)
        # The slow client never reads: the kernel's buffers fill, then its queue of 1024 events, then it is dropped.
        # Each task created is two events (the task and its log line).
        names = [f"task-{index}" for index in range(1500)]
        create_tasks(coordinator, names)
        assert wait_until(lambda: sample(scrape(coordinator), "dtr_event_clients_dropped_total") == 1, timeout=20)
        assert sample(scrape(coordinator), "dtr_event_clients") == 1, "the fast client is still connected"
        # The fast client got every event, in order, and keeps getting new ones.
        fast.wait_for_event(lambda e: e.type == "task" and e.data["task_id"] == names[-1])
        create_tasks(coordinator, ["one-more"])
        fast.wait_for_event(lambda e: e.type == "task" and e.data["task_id"] == "one-more")
        assert consecutive(fast.snapshot())
        created = {e.data["task_id"] for e in fast.snapshot() if e.type == "task"}
        assert created >= {*names, "one-more"}
        # The slow client's connection was closed: reading it now gives what was buffered, then the end.
        received = b""
        slow.sock.settimeout(10)
        while chunk := slow.sock.recv(1 << 16):
            received += chunk
        assert received.startswith(b"HTTP/1.1 200"), received[:100]
        assert b"event: hello" in received and len(received) < 4 << 20, "bounded: it did not get everything"
    assert coordinator.get_json("/api/health")["status"] == "ok"


def test_tickets_with_an_admin_token(coordinator_factory):
    coordinator = coordinator_factory(args=[*FAST, "--admin-token", ADMIN_TOKEN, "--events-ticket-lifetime", "2s"])

    def status(path: str, *, method: str = "GET", token: str | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(coordinator.http_url + path, method=method, headers=headers, data=None)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    code, body = status("/api/events")
    assert code == 401 and "POST /api/events/ticket" in body["error"]["message"], body
    code, body = status("/api/events", token=ADMIN_TOKEN)
    assert code == 401, "EventSource cannot send the token: the stream takes a ticket only"
    code, body = status("/api/events?ticket=0123456789abcdef0123456789abcdef")
    assert code == 401 and "wrong or expired" in body["error"]["message"]
    assert status("/api/events/ticket", method="POST")[0] == 401, "a ticket needs the admin token"
    assert status("/api/events/ticket", method="POST", token="wrong-token-0123456789")[0] == 401

    code, issued = status("/api/events/ticket", method="POST", token=ADMIN_TOKEN)
    assert code == 200 and issued["expires_in_seconds"] == 2 and len(issued["ticket"]) == 32
    ticket = issued["ticket"]
    # Good for several connections while it lasts (a reconnect may reuse it).
    with EventStream(coordinator.http_url, f"/api/events?ticket={ticket}") as first:
        first.wait_for_event(lambda e: e.type == "hello")
        with EventStream(coordinator.http_url, f"/api/events?ticket={ticket}") as second:
            second.wait_for_event(lambda e: e.type == "hello")
            coordinator.post_json("/api/tasks", {"name": "seen"}, token=ADMIN_TOKEN)
            for stream in (first, second):
                stream.wait_for_event(lambda e: e.type == "task" and e.data["task_id"] == "seen")
    time.sleep(2.2)
    code, body = status(f"/api/events?ticket={ticket}")
    assert code == 401 and "wrong or expired" in body["error"]["message"], "expired"
    # The rest of /api keeps needing the token (static files do not: test_dashboard_assets.py).
    assert status("/api/workers")[0] == 401 and status("/api/dashboard")[0] == 401
    assert status("/api/health")[0] == 200


def test_sigterm_ends_open_streams_and_shuts_down_promptly(coordinator_factory, spawn_worker):
    coordinator = coordinator_factory(args=[*FAST, "--http-rate-limit", "0"])
    spawn_worker(coordinator.grpc_address, "w0").wait_for(lambda e: e["event"] == "registered")
    with ExitStack() as stack:
        readers = [stack.enter_context(EventStream(coordinator.http_url)) for _ in range(5)]
        # One more that never reads, with a tiny window: a few hundred events (about 250 KB) fill the kernel's
        # buffers, so its writer is stuck with events still queued (fewer than 1024: it is not dropped).
        stack.enter_context(EventStream(coordinator.http_url, read=False, receive_buffer=1024))
        create_tasks(coordinator, [f"t{index}" for index in range(300)])
        for reader in readers:
            reader.wait_for_event(lambda e: e.type == "task" and e.data["task_id"] == "t299")
        assert sample(scrape(coordinator), "dtr_event_clients") == 6
        started = time.monotonic()
        assert coordinator.stop(timeout=15) == 0
        took = time.monotonic() - started
        assert took < 8, f"graceful shutdown took {took:.1f}s with streams open"
        for reader in readers:
            reader.wait_until_ended(timeout=5)


@contextmanager
def idle_streams(url: str, count: int) -> Iterator[list[EventStream]]:
    with ExitStack() as stack:
        streams = [stack.enter_context(EventStream(url)) for _ in range(count)]
        for stream in streams:
            stream.wait_for_event(lambda e: e.type == "hello")
        yield streams


def test_fifty_idle_streams_do_not_change_failure_detection(coordinator_factory, spawn_worker):
    """The membership test of a kill -9 (death declared within the dead timeout + a heartbeat interval + 0.3 s,
    survivors told at once), unchanged, with 50 event streams open from the coordinator's start."""
    opened: list[EventStream] = []
    with ExitStack() as stack:

        def factory(*args, **kwargs) -> LocalCoordinator:
            coordinator = coordinator_factory(*args, **kwargs)
            opened.extend(stack.enter_context(idle_streams(coordinator.http_url, 50)))
            return coordinator

        test_membership.test_killed_worker_is_dead_within_timeout_and_survivors_see_it(factory, spawn_worker)
        assert len(opened) == 50
        coordinator_url = opened[0].base_url
        for stream in opened:
            stream.wait_for_event(lambda e: e.type == "worker" and e.data["change"] == "died")
            changes = worker_changes(stream.snapshot())
            assert [worker for worker, change in changes if change == "died"] == ["w1"], changes
            assert not [change for worker, change in changes if worker != "w1" and change in ("suspected", "died")]
            assert consecutive(stream.snapshot())
        health = json.load(urllib.request.urlopen(coordinator_url + "/api/status", timeout=10))
        assert health["workers"]["dead"] == 1 and health["workers"]["healthy"] == 3


def test_fifty_idle_streams_and_steady_heartbeats_see_no_false_suspicion(coordinator_factory, spawn_worker):
    """Eight workers heartbeat every 200 ms for 5 s with 50 streams open: nobody is ever suspected, and every stream
    sees every worker's metrics. The default suspect and dead timeouts (2 s, 5 s): with the tests' 600 ms, a worker
    process starved of CPU by the rest of a busy machine is suspected whatever the coordinator does."""
    coordinator = coordinator_factory(
        args=["--heartbeat-interval", "200ms", "--suspect-after", "2s", "--dead-after", "5s"]
    )
    with idle_streams(coordinator.http_url, 50) as streams:
        workers = [spawn_worker(coordinator.grpc_address, f"w{index}") for index in range(8)]
        for worker in workers:
            worker.wait_for(lambda event: event.get("world_size") == 8)
        time.sleep(5)
        assert all(w["status"] == "healthy" for w in workers_by_id(coordinator).values())
        for stream in streams:
            changes = worker_changes(stream.snapshot())
            assert not [c for c in changes if c[1] in ("suspected", "died", "left")], changes
            assert {worker for worker, change in changes if change == "metrics"} == {f"w{i}" for i in range(8)}

"""Tokens against the real coordinator: workers need the worker token on every call, people the admin token on the
HTTP API; a coordinator exposed beyond loopback without them refuses to start."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import FAST, free_port, sample, scrape
from dtruntime import DatasetRegistry, TrainingOrchestrator, Unauthenticated, Worker
from dtruntime.client import CoordinatorClient
from dtruntime.errors import ResourceExhausted
from dtruntime.v1 import coordinator_pb2 as pb
from dtruntime.v1 import coordinator_pb2_grpc as pb_grpc

WORKER_TOKEN = "worker-token-0123456789"
ADMIN_TOKEN = "admin-token-9876543210"


@pytest.fixture
def secured(coordinator_factory, monkeypatch):
    monkeypatch.delenv("DTR_WORKER_TOKEN", raising=False)
    return coordinator_factory(args=[*FAST, "--worker-token", WORKER_TOKEN, "--admin-token", ADMIN_TOKEN])


def test_workers_need_the_worker_token(secured, monkeypatch):
    with pytest.raises(Unauthenticated, match="requires a worker token: set DTR_WORKER_TOKEN"):
        TrainingOrchestrator(secured.grpc_address).register_worker("w0", "127.0.0.1", 7000)
    monkeypatch.setenv("DTR_WORKER_TOKEN", "not-the-token-at-all")
    with pytest.raises(Unauthenticated, match="the worker token is wrong"):
        DatasetRegistry(secured.grpc_address).register("d", total_samples=10, shard_size=5)
    monkeypatch.setenv("DTR_WORKER_TOKEN", WORKER_TOKEN)
    with Worker(secured.grpc_address, "w1") as worker:  # the session stream carries it too
        worker.wait_for(lambda view: view.rank == 0, timeout=10)
        worker.barrier("sync", expected=1)
    workers = secured.get_json("/api/workers", token=ADMIN_TOKEN)["workers"]
    assert [worker["worker_id"] for worker in workers] == ["w1"], "the refused calls changed nothing"


def test_the_http_api_needs_the_admin_token_but_health(secured):
    assert secured.get_json("/api/health")["status"] == "ok"
    refused = secured.get_json("/api/workers")["error"]
    assert refused["code"] == "unauthenticated" and "send Authorization: Bearer" in refused["message"]
    assert secured.get_json("/api/workers", token="wrong-token-0123456789")["error"]["code"] == "unauthenticated"
    assert secured.post_json("/api/tasks", {"name": "job"})["error"]["code"] == "unauthenticated"
    assert secured.get_json("/api/tasks", token=ADMIN_TOKEN) == {"tasks": []}, "the refused POST created nothing"
    assert secured.post_json("/api/tasks", {"name": "job"}, token=ADMIN_TOKEN)["status"] == "pending"
    log = secured.log_path.read_text()
    assert WORKER_TOKEN not in log and ADMIN_TOKEN not in log, "tokens are never logged"


def test_an_exposed_coordinator_without_tokens_refuses_to_start(dtr_binary, tmp_path):
    command = [dtr_binary, "serve", "--host", "0.0.0.0", "--grpc-port", str(free_port()), "--data-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert "--host 0.0.0.0 exposes the coordinator beyond this machine" in result.stderr
    assert "or pass --insecure" in result.stderr


def test_cors_preflight_from_a_listed_origin(coordinator_factory):
    origin = "http://dashboard.local:8080"
    coordinator = coordinator_factory(args=[*FAST, "--cors-origins", f"{origin}, https://other.example"])
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    request = urllib.request.Request(coordinator.http_url + "/api/tasks", method="OPTIONS", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
    foreign = urllib.request.Request(
        coordinator.http_url + "/api/tasks", method="OPTIONS", headers={**headers, "Origin": "https://evil.example"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(foreign, timeout=10)
    assert refused.value.code == 403 and refused.value.headers["Access-Control-Allow-Origin"] is None


def test_a_burst_beyond_the_rate_limit_gets_429_with_retry_after(coordinator_factory):
    coordinator = coordinator_factory(args=[*FAST, "--http-rate-limit", "2"])  # bursts of 4
    statuses = []
    for _ in range(10):
        try:
            with urllib.request.urlopen(coordinator.http_url + "/api/health", timeout=10) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)
            retry_after = error.headers["Retry-After"]
            body = json.load(error)
    assert statuses[:4] == [200] * 4 and 429 in statuses
    assert int(retry_after) >= 1
    assert body["error"]["code"] == "resource_exhausted" and "--http-rate-limit" in body["error"]["message"]
    # Operators see the refusals: /metrics counts each one (scraped once the budget is back).
    time.sleep(2.5)
    text = scrape(coordinator)
    assert sample(text, "dtr_rate_limited_total", 'protocol="http"') == statuses.count(429)
    assert sample(text, "dtr_rate_limited_total", 'protocol="grpc"') == 0


def _post(url: str, body: bytes | list[bytes]) -> tuple[int, dict]:
    """POSTs ``body`` to ``url``: bytes with a Content-Length, a list of chunks chunked (no Content-Length)."""
    data = body if isinstance(body, bytes) else iter(body)
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _task_body(name: str, size: int) -> bytes:
    """A ``POST /api/tasks`` body of exactly ``size`` bytes (the padding is a config string)."""
    empty = len(json.dumps({"name": name, "config": {"pad": ""}}))
    body = json.dumps({"name": name, "config": {"pad": "x" * (size - empty)}}).encode()
    assert len(body) == size
    return body


def test_http_bodies_over_the_limit_get_413_and_change_nothing(coordinator_factory):
    coordinator = coordinator_factory(args=[*FAST, "--http-max-body", "4KiB"])
    url = coordinator.http_url + "/api/tasks"
    assert _post(url, _task_body("at-limit", 4096))[0] == 201
    chunked = _task_body("chunked", 4096)
    assert _post(url, [chunked[:2048], chunked[2048:]])[0] == 201, "a chunked body within the limit is handled"
    expected = "request body is larger than 4 KiB (--http-max-body): send a smaller body, or raise the coordinator's"
    big = _task_body("chunked-over", 64 << 10)
    for body in [_task_body("one-byte-over", 4097), [big[i : i + 1000] for i in range(0, len(big), 1000)]]:
        status, answer = _post(url, body)
        assert status == 413
        assert answer["error"]["code"] == "invalid_argument"
        assert answer["error"]["message"].startswith(expected)
    tasks = coordinator.get_json("/api/tasks")["tasks"]
    assert sorted(task["task_id"] for task in tasks) == ["at-limit", "chunked"], "the refused bodies created nothing"
    assert coordinator.get_json("/api/health")["status"] == "ok", "the connection and the server are fine afterwards"


class _Counting:
    """Wraps a stub method, counting the tries that reach the wire."""

    def __init__(self, method) -> None:
        self.method = method
        self.tries = 0

    def __call__(self, request, **kwargs):
        self.tries += 1
        return self.method(request, **kwargs)


def test_the_sdk_waits_out_the_grpc_rate_limit(coordinator_factory):
    coordinator = coordinator_factory(args=[*FAST, "--grpc-rate-limit", "5"])  # bursts of 10
    with CoordinatorClient(coordinator.grpc_address) as client:
        client._stub.RegisterWorker = counting = _Counting(client._stub.RegisterWorker)
        started = time.monotonic()
        for index in range(20):
            client.register_worker(f"w{index}", "127.0.0.1", 7000 + index)
        elapsed = time.monotonic() - started
    assert counting.tries > 20, "the coordinator refused some tries"
    assert elapsed >= 1.5, "20 calls at 5 per second after a burst of 10 take about 2 s"
    workers = coordinator.get_json("/api/workers")["workers"]
    assert sorted(worker["worker_id"] for worker in workers) == sorted(f"w{index}" for index in range(20)), (
        "every call succeeded once: a refused try changed nothing"
    )
    # Without the SDK's retries, the same burst is refused with RESOURCE_EXHAUSTED and retry-after-ms.
    refused = []
    with grpc.insecure_channel(coordinator.grpc_address) as channel:
        stub = pb_grpc.CoordinatorStub(channel)
        for index in range(20):
            try:
                stub.DeregisterWorker(pb.DeregisterWorkerRequest(worker_id=f"w{index}"), timeout=10)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
                refused.append(error)
    assert refused, "the raw stub was refused"
    assert "--grpc-rate-limit" in refused[0].details()
    assert int(dict(refused[0].trailing_metadata())["retry-after-ms"]) > 0
    # /metrics counted every refusal: the SDK's refused tries and the raw stub's.
    refusals = sample(scrape(coordinator), "dtr_rate_limited_total", 'protocol="grpc"')
    assert refusals == (counting.tries - 20) + len(refused)


def test_the_sdk_gives_up_on_the_rate_limit_within_its_timeout(coordinator_factory):
    coordinator = coordinator_factory(args=[*FAST, "--grpc-rate-limit", "1"])  # bursts of 2
    registered = []
    with (
        CoordinatorClient(coordinator.grpc_address, timeout=0.5) as client,
        pytest.raises(ResourceExhausted, match="raise the coordinator's --grpc-rate-limit") as refused,
    ):
        for index in range(10):
            registered.append(client.register_worker(f"w{index}", "127.0.0.1", 7000))
    assert "rate limit: more than 1 calls per second" in refused.value.message
    assert "still refused after 1 try in" in refused.value.message, "a wait longer than the timeout is not begun"
    assert len(registered) == 2, "the burst went through first"


def test_an_oversize_grpc_message_is_refused_at_once_and_not_retried(coordinator_factory):
    coordinator = coordinator_factory(args=[*FAST, "--barrier-max-payload", "1KiB"])  # messages up to 1 MiB + 1 KiB
    with CoordinatorClient(coordinator.grpc_address) as client:
        client._stub.RegisterWorker = counting = _Counting(client._stub.RegisterWorker)
        started = time.monotonic()
        size = pb.RegisterWorkerRequest(worker_id="w0", host="h" * (2 << 20), port=7000).ByteSize()
        with pytest.raises(ResourceExhausted) as refused:
            client.register_worker("w0", "h" * (2 << 20), 7000)
        assert time.monotonic() - started < 2
        assert counting.tries == 1, "a message over the size limit is final"
        assert refused.value.message == (
            f"message of {size} bytes is larger than this coordinator accepts ({(1 << 20) + 1024} bytes: "
            "--barrier-max-payload + 1 MiB): send less, or raise the coordinator's --barrier-max-payload"
        )
        client.register_worker("w1", "127.0.0.1", 7000)
    workers = coordinator.get_json("/api/workers")["workers"]
    assert [worker["worker_id"] for worker in workers] == ["w1"], "the refused message changed nothing"

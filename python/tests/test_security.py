"""Tokens against the real coordinator: workers need the worker token on every call, people the admin token on the
HTTP API; a coordinator exposed beyond loopback without them refuses to start."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import FAST, free_port
from dtruntime import DatasetRegistry, TrainingOrchestrator, Unauthenticated, Worker

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

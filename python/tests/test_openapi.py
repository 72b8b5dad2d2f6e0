"""docs/openapi.yaml against the real coordinator: schemathesis generates requests from the description (valid and
invalid ones, a bounded number per operation) and fails on any 5xx, and on any status code, content type, header or
body the description does not allow. A coordinator with some of everything (workers, a dataset ledger, barriers, a
checkpoint, tasks) is tested, with and without an admin token, and rate-limited.

``DTR_OPENAPI_SEED`` and ``DTR_OPENAPI_EXAMPLES`` (per operation) change the run, e.g. for a longer local fuzz."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import schemathesis

from conftest import FAST, REPO, wait_until
from dtruntime import CheckpointManager, DatasetRegistry, DtrError, LocalCoordinator, Worker

SPEC = REPO / "docs" / "openapi.yaml"
ADMIN_TOKEN = "openapi-admin-token-0123456789"
# Every check that applies to this API. Not unsupported_method (it wants 405 for undocumented methods: the API answers
# 404 "no route", as documented), nor the ones for required headers, DELETE and authentication schemes, which have
# nothing to test here (the token is checked through the 401s of a run without it).
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",  # what the description forbids is refused (4xx) ...
    "positive_data_acceptance",  # ... and what it allows is not (no 400 for a valid request)
    "ensure_resource_availability",  # stateful: a task POST /api/tasks created is found by GET /api/tasks/{id}
]
SEED = os.environ.get("DTR_OPENAPI_SEED", "20261129")
# GET /api/events streams until the coordinator stops: schemathesis would wait for its end. test_events.py tests it; the
# run without a token covers its 401s.
STREAM = ("GET", "/api/events")
# Served without the admin token: the health probe and the dashboard's files (404 when no dashboard is built in).
DASHBOARD_FILES = {"/", "/index.html", "/app.js", "/app.js.map", "/app.css"}
BUNDLED = (REPO / "dashboard" / "dist" / "index.html").exists()
EXAMPLES = int(os.environ.get("DTR_OPENAPI_EXAMPLES", "25"))
NO_RATE_LIMIT = ["--http-rate-limit", "0"]


def operations() -> dict[tuple[str, str], re.Pattern[str]]:
    """Every operation of the description, (method, path template) -> a pattern matching its request paths."""
    patterns = {}
    for result in schemathesis.openapi.from_path(SPEC).get_all_operations():
        operation = result.ok()
        path = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(operation.path))
        patterns[operation.method.upper(), operation.path] = re.compile(f"^{path}$")
    return patterns


def run_schemathesis(
    coordinator: LocalCoordinator,
    workdir: Path,
    *extra: str,
    spec: Path = SPEC,
    examples: int = EXAMPLES,
    stream: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``schemathesis run`` against the live coordinator, every phase, positive and negative inputs, in ``workdir``
    (it keeps its reports and caches there); the exchanges are recorded in ``workdir/run.har``. The event stream is
    left out unless ``stream`` (only where every request to it is refused)."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        str(spec),
        "--url",
        coordinator.http_url,
        "--checks",
        ",".join(CHECKS),
        "--mode",
        "all",
        "--max-examples",
        str(examples),
        "--seed",
        SEED,
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--no-color",
        "--report",
        "har",
        "--report-har-path",
        str(workdir / "run.har"),
        *([] if stream else ["--exclude-operation-id", "streamEvents"]),
        *extra,
    ]
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300, check=False)


def assert_green(result: subprocess.CompletedProcess[str]) -> None:
    print(result.stdout[max(0, result.stdout.find("=== SUMMARY ===")) :])  # shown with -s or -rP
    assert result.returncode == 0, (
        f"schemathesis found the coordinator and docs/openapi.yaml disagreeing (exit {result.returncode}):\n"
        f"{result.stdout}\n{result.stderr}"
    )


def statuses(workdir: Path) -> dict[tuple[str, str], collections.Counter[int]]:
    """The status codes each documented operation answered during the run (from its HAR record)."""
    patterns = operations()
    seen: dict[tuple[str, str], collections.Counter[int]] = {key: collections.Counter() for key in patterns}
    for entry in json.loads((workdir / "run.har").read_text())["log"]["entries"]:
        method = entry["request"]["method"]
        path = "/" + entry["request"]["url"].split("/", 3)[3].split("?")[0]
        for (operation_method, template), pattern in patterns.items():
            if method == operation_method and pattern.match(path):
                seen[operation_method, template][entry["response"]["status"]] += 1
    return seen


@contextmanager
def some_of_everything(coordinator: LocalCoordinator, token: str | None = None) -> Iterator[None]:
    """Puts something in every collection the API lists, so that real objects (not just empty lists) are checked
    against the description: tasks (pending and stopped), live workers with metrics (one of them NaN: null), a
    departed worker, a dataset with an epoch under way, a released barrier and an open one missing a rank, a committed
    checkpoint."""
    created = coordinator.post_json(
        "/api/tasks",
        {"name": "job", "world_size": 1, "dataset": "digits", "epochs": 2, "config": {"lr": 0.1, "layers": [64, 10]}},
        token=token,
    )
    assert created["status"] == "pending", created
    coordinator.post_json("/api/tasks", {"name": "halted"}, token=token)
    assert coordinator.post_json("/api/tasks/halted/stop", token=token)["status"] == "stopped"
    with Worker(coordinator.grpc_address, "gone", host="127.0.0.1"):
        pass
    DatasetRegistry(coordinator.grpc_address).register("digits", total_samples=100, shard_size=10, shuffle=True)
    with ExitStack() as stack:

        def join(worker_id: str, task: str) -> Worker:
            worker = Worker(coordinator.grpc_address, worker_id, task_id=task, host="127.0.0.1", labels={"zone": "a"})
            return stack.enter_context(worker)

        worker, waiter, _ = join("w0", "job"), join("w1", "other"), join("w2", "other")
        waiter.wait_for_world_size(2, timeout=10)
        worker.report(step=7, loss=0.25, grad_norm=float("nan"), flush=True)
        next(worker.epoch_batches("digits", 0, batch_size=5))
        worker.barrier("sync", expected=1)
        with CheckpointManager(worker=worker) as checkpoints:
            checkpoints.save({"weights": np.arange(8, dtype=np.float32)}, step=1, metrics={"loss": 0.25})

        # w1 waits for every member of its task; the barrier fails (and the thread ends) when w2 leaves.
        def wait() -> None:
            with contextlib.suppress(DtrError):
                waiter.barrier("pending", timeout=120)

        threading.Thread(target=wait, daemon=True).start()
        wait_until(lambda: coordinator.get_json("/api/barriers", token=token)["open"], timeout=10)
        wait_until(lambda: coordinator.get_json("/api/workers?task=job", token=token)["workers"][0]["step"] == 7)
        health = {w["worker_id"]: w["status"] for w in coordinator.get_json("/api/workers", token=token)["workers"]}
        assert health == {"gone": "left", "w0": "healthy", "w1": "healthy", "w2": "healthy"}, health
        yield


def test_the_description_covers_every_route():
    """Every route Router.swift declares is described (and nothing else), so a new endpoint cannot go undocumented."""
    router = (REPO / "Sources" / "Coordinator" / "HTTP" / "Router.swift").read_text()
    routes = {
        (method.upper(), re.sub(r":(\w+)", r"{\1}", path))
        for method, path in re.findall(r'router\.(get|post|put|patch|delete)\("([^"]+)"', router)
    }
    assert len(routes) >= 14, f"Router.swift no longer parses as expected: {routes}"
    assert routes == set(operations())


def test_the_api_matches_its_openapi_description(coordinator_factory, tmp_path):
    coordinator = coordinator_factory(args=[*FAST, *NO_RATE_LIMIT])
    with some_of_everything(coordinator):
        result = run_schemathesis(coordinator, tmp_path / "open")
    assert_green(result)
    seen = statuses(tmp_path / "open")
    for (method, path), codes in seen.items():
        if (method, path) == STREAM:
            continue
        if path in DASHBOARD_FILES and not BUNDLED:
            assert set(codes) <= {404, 413}, f"{method} {path}: no dashboard is built in: {dict(codes)}"
            continue
        assert any(200 <= code < 300 for code in codes), f"{method} {path} never succeeded: {dict(codes)}"
    assert seen["POST", "/api/tasks"][201] > 0
    assert seen["GET", "/api/logs"][400] > 0, "invalid queries were sent too"


def test_the_description_holds_with_an_admin_token(coordinator_factory, tmp_path):
    coordinator = coordinator_factory(args=[*FAST, *NO_RATE_LIMIT, "--admin-token", ADMIN_TOKEN])
    with some_of_everything(coordinator, token=ADMIN_TOKEN):
        result = run_schemathesis(coordinator, tmp_path / "token", "--header", f"Authorization: Bearer {ADMIN_TOKEN}")
    assert_green(result)
    for (method, path), codes in statuses(tmp_path / "token").items():
        if (method, path) == STREAM or (path in DASHBOARD_FILES and not BUNDLED):
            continue
        assert any(200 <= code < 300 for code in codes), f"{method} {path} never succeeded: {dict(codes)}"

    # Without the token: 401 everywhere but the health probe and the dashboard's files, each one as documented. The
    # event stream refuses every request too (no ticket, or a made-up one).
    assert_green(run_schemathesis(coordinator, tmp_path / "no-token", examples=5, stream=True))
    for (method, path), codes in statuses(tmp_path / "no-token").items():
        if path == "/api/health":
            expected = {200}
        elif path in DASHBOARD_FILES:
            expected = {200, 304} if BUNDLED else {404}
        else:
            expected = {401}
        assert codes and set(codes) <= expected, f"{method} {path}: {dict(codes)}"


def test_rate_limited_answers_match_the_description(coordinator_factory, tmp_path):
    coordinator = coordinator_factory(args=[*FAST, "--http-rate-limit", "1"])
    assert_green(run_schemathesis(coordinator, tmp_path / "limited", examples=3))
    codes = sum(statuses(tmp_path / "limited").values(), collections.Counter())
    assert codes[429] > codes.total() / 2, f"most requests were over the limit: {dict(codes)}"


def test_a_response_that_breaks_the_description_fails_the_run(coordinator_factory, tmp_path):
    """The harness is not vacuous: with a description that is wrong about one field, the run fails and names it."""
    broken = tmp_path / "openapi.yaml"
    text = SPEC.read_text()
    health = "uptime_seconds: {type: number, minimum: 0}"
    assert health in text
    broken.write_text(text.replace(health, "uptime_seconds: {type: string}", 1))
    coordinator = coordinator_factory(args=[*FAST, *NO_RATE_LIMIT])
    result = run_schemathesis(
        coordinator, tmp_path / "broken", "--include-path", "/api/health", spec=broken, examples=2
    )
    assert result.returncode != 0, result.stdout
    assert "Response violates schema" in result.stdout and "is not of type" in result.stdout, result.stdout

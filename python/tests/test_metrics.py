"""Metrics of the real coordinator: /metrics in Prometheus text format (checked by promtool), /api/metrics and
/api/dashboard."""

from __future__ import annotations

import shutil
import subprocess

from conftest import sample, scrape, wait_until
from dtruntime import TrainingOrchestrator, Worker


def test_prometheus_exposition_passes_promtool_and_counts_what_happened(coordinator_factory):
    coordinator = coordinator_factory()
    orchestrator = TrainingOrchestrator(coordinator.grpc_address)
    for index in range(3):
        orchestrator.register_worker(f"m{index}", "127.0.0.1", 7000 + index)
    with Worker(coordinator.grpc_address, "beating") as worker:
        wait_until(lambda: coordinator.get_json("/api/metrics")["heartbeats_total"] >= 3, timeout=10)
        worker.barrier("sync", expected=1)
    text = scrape(coordinator)
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: run make setup (Debian's prometheus package)"
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert sample(text, "dtr_rpc_duration_seconds_count", 'method="RegisterWorker"') == 4
    assert sample(text, "dtr_heartbeats_total") >= 3
    assert sample(text, "dtr_barriers_total", 'outcome="released"') == 1
    assert sample(text, "dtr_barrier_release_seconds_count") == 1
    assert sample(text, "dtr_workers", 'status="left"') == 1
    assert sample(text, "dtr_tasks", 'status="running"') == 1
    # Exported, and bounded as its help says: nothing like the dead timeout on a coordinator this idle.
    assert 0 <= sample(text, "dtr_scheduling_lag_seconds") < 5


def test_api_metrics_and_dashboard(coordinator_factory):
    coordinator = coordinator_factory()
    with Worker(coordinator.grpc_address, "w0"):
        metrics = wait_until(
            lambda: (body := coordinator.get_json("/api/metrics"))["heartbeats_per_second"] > 0 and body, timeout=15
        )
        assert metrics["workers"]["healthy"] == 1 and metrics["sessions"] == 1
        register = metrics["rpc"]["RegisterWorker"]
        assert register["count"] == 1 and register["errors"] == {}
        assert register["latency"]["p50_seconds"] > 0
        dashboard = coordinator.get_json("/api/dashboard")
        assert set(dashboard) == {
            "event_id",
            "status",
            "workers",
            "tasks",
            "datasets",
            "barriers",
            "checkpoints",
            "metrics",
            "logs",
        }
        assert dashboard["event_id"] >= 1, "the join (at least) was an event of /api/events"
        assert [worker["worker_id"] for worker in dashboard["workers"]["workers"]] == ["w0"]
        assert any(entry["message"] == "worker joined" for entry in dashboard["logs"]["logs"])

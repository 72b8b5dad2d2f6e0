"""Hostile or buggy clients against the real coordinator on loopback (issue #13): what they send must not forge logs,
break reads or take the coordinator down. Each test is bounded and takes seconds."""

from __future__ import annotations

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

"""Errors carry machine-readable reasons: every reason of testdata/error_reasons.json raises its typed exception, and
the real coordinator sends them (gRPC ``dtr-reason`` metadata, in-band on the barrier stream, HTTP error bodies)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import grpc
import pytest

import dtruntime
from conftest import FAST
from dtruntime import (
    BarrierMismatch,
    CoordinatorClient,
    DtrError,
    NotAMember,
    ShardMoved,
    StaleEpoch,
    TaskFull,
    Unauthenticated,
    UnknownWorker,
)
from dtruntime.errors import from_status

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "testdata" / "error_reasons.json").read_text())["reasons"]
STATUS = {status.name.lower(): status for status in grpc.StatusCode}


@pytest.mark.parametrize("row", VECTORS, ids=[row["reason"] for row in VECTORS])
def test_each_reason_raises_its_typed_exception(row: dict[str, str]) -> None:
    error = from_status(STATUS[row["code"]], "what went wrong", "127.0.0.1:1", {"dtr-reason": row["reason"]})
    assert type(error) is getattr(dtruntime, row["python"])
    assert error.reason == row["reason"] and error.code == STATUS[row["code"]]
    assert error.message == "what went wrong", "a coordinator's answer is passed on as it is"


def test_the_reason_decides_not_the_code_or_the_message() -> None:
    # Message text that once decided the class ("barrier ...", "register again") decides nothing now.
    moved = from_status(
        grpc.StatusCode.FAILED_PRECONDITION, "barrier x: register again", "a", {"dtr-reason": "SHARD_MOVED"}
    )
    assert type(moved) is ShardMoved
    plain = from_status(grpc.StatusCode.ABORTED, "barrier sync failed", "a", {"dtr-reason": "ABORTED"})
    assert type(plain) is dtruntime.Aborted
    # A reason this SDK does not know yet (a newer coordinator): the code's class, the reason kept.
    newer = from_status(grpc.StatusCode.FAILED_PRECONDITION, "m", "a", {"dtr-reason": "SOMETHING_NEW"})
    assert type(newer) is dtruntime.FailedPrecondition and newer.reason == "SOMETHING_NEW"


def test_details_come_with_the_reason() -> None:
    stale = from_status(9, "stale", "a", {"dtr-reason": "STALE_EPOCH", "dtr-membership-epoch": "7"})
    assert isinstance(stale, StaleEpoch) and stale.membership_epoch == 7
    aborted = from_status(
        grpc.StatusCode.ABORTED,
        "m",
        "a",
        {"dtr-reason": "BARRIER_ABORTED", "dtr-missing-ranks": "1,3", "dtr-missing-workers": "w1,w3"},
    )
    assert isinstance(aborted, dtruntime.BarrierAborted)
    assert aborted.missing_ranks == [1, 3] and aborted.missing_workers == ["w1", "w3"]


def test_no_reason_means_the_coordinator_did_not_answer() -> None:
    unreachable = from_status(grpc.StatusCode.UNAVAILABLE, "failed to connect", "127.0.0.1:1")
    assert isinstance(unreachable, dtruntime.CoordinatorUnavailable) and unreachable.reason == ""
    assert "is `dtr serve` running?" in unreachable.message and "DTR_CA_FILE" in unreachable.message
    shutting = from_status(grpc.StatusCode.UNAVAILABLE, "shutting down", "h:1", {"dtr-reason": "SHUTTING_DOWN"})
    assert shutting.message == "shutting down" and shutting.reason == "SHUTTING_DOWN"


def _raised(call: Any) -> DtrError:
    with pytest.raises(DtrError) as caught:
        call()
    return caught.value


def test_the_coordinator_sends_reasons_over_grpc(coordinator_factory) -> None:
    coordinator = coordinator_factory(args=[*FAST, "--dead-after", "60s", "--suspect-after", "30s"])
    client = CoordinatorClient(coordinator.grpc_address)
    try:
        unknown = _raised(lambda: client.heartbeat("ghost"))
        assert isinstance(unknown, UnknownWorker) and unknown.reason == "UNKNOWN_WORKER"

        client.register_worker("w0", "127.0.0.1", 7000, task_id="t", world_size=(0, 2))
        epoch = client.register_worker("w1", "127.0.0.1", 7001, task_id="t").view.membership_epoch
        full = _raised(lambda: client.register_worker("w2", "127.0.0.1", 7002, task_id="t"))
        assert isinstance(full, TaskFull) and full.reason == "TASK_FULL"

        # On the barrier stream the reason and its details come in-band (the reply's metadata).
        stale = _raised(lambda: client.barrier_sync("b", "w0", membership_epoch=epoch - 1, timeout=5))
        assert isinstance(stale, StaleEpoch) and stale.membership_epoch == epoch

        client.register_dataset("d", total_samples=100, shard_size=10)
        mine = client.get_shard_assignment("d", "w0", 0).shards[0].shard_id
        moved = _raised(
            lambda: client.report_shard_progress("d", "w1", epoch=0, membership_epoch=epoch, shard_id=mine, consumed=1)
        )
        assert isinstance(moved, ShardMoved) and moved.reason == "SHARD_MOVED"
        # A normal outcome of the protocol, not an error for alerting.
        errors = coordinator.get_json("/api/metrics")["rpc"]["ReportShardProgress"].get("errors", {})
        assert errors == {}

        mismatched: list[BaseException] = []

        def arrive(worker: str, expected: int) -> None:
            try:
                client.barrier_sync("m", worker, membership_epoch=epoch, expected=expected, timeout=10)
            except DtrError as error:
                mismatched.append(error)

        threads = [threading.Thread(target=arrive, args=(w, n)) for w, n in (("w0", 2), ("w1", 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert mismatched and all(isinstance(error, BarrierMismatch) for error in mismatched), mismatched

        client.deregister_worker("w1")
        gone = _raised(lambda: client.get_shard_assignment("d", "w1", 0))
        assert isinstance(gone, NotAMember) and gone.reason == "NOT_A_MEMBER"
    finally:
        client.close()


def test_interceptors_and_http_errors_carry_reasons(coordinator_factory, monkeypatch) -> None:
    monkeypatch.delenv("DTR_WORKER_TOKEN", raising=False)
    coordinator = coordinator_factory(args=[*FAST, "--worker-token", "worker-token-0123456789"])
    client = CoordinatorClient(coordinator.grpc_address)
    wrong = CoordinatorClient(coordinator.grpc_address, token="not-the-token-at-all")
    try:
        missing = _raised(lambda: client.heartbeat("w"))
        assert isinstance(missing, Unauthenticated) and missing.reason == "TOKEN_MISSING"
        refused = _raised(lambda: wrong.heartbeat("w"))
        assert isinstance(refused, Unauthenticated) and refused.reason == "TOKEN_WRONG"
    finally:
        client.close()
        wrong.close()
    assert coordinator.get_json("/api/nothing-here")["error"]["reason"] == "NOT_FOUND"
    bad = coordinator.post_json("/api/tasks", {"name": ""})["error"]
    assert bad == {"code": "invalid_argument", "reason": "INVALID_ARGUMENT", "message": bad["message"]}
    assert "(or empty" not in bad["message"], "an empty task name is refused, not taken for the default task"

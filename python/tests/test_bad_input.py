"""Bad input gets INVALID_ARGUMENT naming the field and the rule, changes nothing, and never crashes the coordinator."""

from __future__ import annotations

import grpc
import pytest

from dtruntime import InvalidArgument, NotFound, TrainingOrchestrator, Unimplemented
from dtruntime.v1 import coordinator_pb2 as pb
from dtruntime.v1 import coordinator_pb2_grpc as pb_grpc

BAD_REGISTRATIONS = [
    ({"worker_id": ""}, "worker_id must be 1-128 printable ASCII characters without spaces"),
    ({"worker_id": "w" * 129}, "worker_id must be 1-128 printable ASCII characters without spaces"),
    ({"worker_id": "new\nline"}, "worker_id must be 1-128 printable ASCII characters without spaces"),
    ({"worker_id": "ünïcode"}, "worker_id must be 1-128 printable ASCII characters without spaces"),
    ({"gpu_count": -1}, "gpu_count must be between 0 and 1024 (got -1)"),
    ({"gpu_count": 100_000}, "gpu_count must be between 0 and 1024 (got 100000)"),
    ({"port": 0}, "port must be between 1 and 65535 (got 0)"),
    ({"port": -80}, "port must be between 1 and 65535 (got -80)"),
    ({"port": 65_536}, "port must be between 1 and 65535 (got 65536)"),
    ({"host": ""}, "host must be 1-253 printable ASCII characters without spaces"),
    ({"task_id": "../../etc"}, "task_id must be 1-64 characters of [A-Za-z0-9._-]"),
    ({"labels": {"bad key": "v"}}, "labels key must be 1-63 characters of [A-Za-z0-9._/-]"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_REGISTRATIONS)
def test_bad_registrations_name_the_field_and_rule(coordinator_factory, fields, message):
    coordinator = coordinator_factory()
    request = {"worker_id": "ok", "host": "127.0.0.1", "port": 7000, "gpu_count": 0, **fields}
    with TrainingOrchestrator(coordinator.grpc_address) as orchestrator, pytest.raises(InvalidArgument) as raised:
        orchestrator.register_worker(
            request["worker_id"],
            request["host"],
            request["port"],
            request["gpu_count"],
            labels=request.get("labels"),
            task_id=request.get("task_id", ""),
        )
    assert message in str(raised.value)
    assert coordinator.get_json("/api/workers") == {"workers": []}, "nothing changed"


def test_reference_register_worker_call(coordinator_factory):
    coordinator = coordinator_factory()
    with TrainingOrchestrator(coordinator.grpc_address) as orchestrator:
        registration = orchestrator.register_worker("worker-1", "localhost", 50052, gpu_count=8)
        assert (registration.rank, registration.world_size, registration.membership_epoch) == (0, 1, 1)
        assert registration.heartbeat_interval == pytest.approx(0.2)
        view = orchestrator.heartbeat("worker-1", step=5, metrics={"loss": 0.5})
        assert view.rank == 0
        with pytest.raises(NotFound, match="call RegisterWorker again"):
            orchestrator.heartbeat("nobody")
        with pytest.raises(InvalidArgument, match=r"step must be >= 0 \(got -3\)"):
            orchestrator.heartbeat("worker-1", step=-3)
    (worker,) = coordinator.get_json("/api/workers")["workers"]
    assert (worker["gpu_count"], worker["port"], worker["step"], worker["metrics"]) == (8, 50052, 5, {"loss": 0.5})


def _raw_call(address: str, method: str, payload: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(f"/dtruntime.v1.Coordinator/{method}")
        with pytest.raises(grpc.RpcError) as raised:
            call(payload, timeout=10)
    return raised.value


def test_fields_of_the_wrong_wire_type_are_invalid_argument_naming_the_field(coordinator_factory):
    coordinator = coordinator_factory()
    # Field 3 (port, an int32) sent as a length-delimited string.
    error = _raw_call(coordinator.grpc_address, "RegisterWorker", b"\x0a\x01w\x1a\x04oops")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (
        "field port (3) of dtruntime.v1.RegisterWorkerRequest must be int32 (got a value of wire type length-delimited)"
    )
    # Field 3 (step, an int64) of a heartbeat sent as a 64-bit value.
    error = _raw_call(coordinator.grpc_address, "Heartbeat", b"\x0a\x01w\x19" + bytes(8))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("field step (3) of dtruntime.v1.HeartbeatRequest must be int64")
    # Bytes that are not a message at all (a truncated string).
    error = _raw_call(coordinator.grpc_address, "Heartbeat", b"\x0a\x10short")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "HeartbeatRequest" in error.details()
    # Unknown fields of the right shape are ignored (forward compatibility): this registers "w".
    request = pb.RegisterWorkerRequest(worker_id="w", host="h", port=1).SerializeToString() + b"\xf8\x06\x01"
    with grpc.insecure_channel(coordinator.grpc_address) as channel:
        reply = pb_grpc.CoordinatorStub(channel).RegisterWorker(pb.RegisterWorkerRequest.FromString(request))
    assert reply.view.rank == 0
    assert coordinator.get_json("/api/health")["status"] == "ok", "the coordinator is still up"


def test_checkpoint_calls_refuse_bad_input_and_keep_the_coordinator_up(coordinator_factory):
    coordinator = coordinator_factory()
    with grpc.insecure_channel(coordinator.grpc_address) as channel:
        stub = pb_grpc.CoordinatorStub(channel)
        for method, request, code, message in [
            (stub.SaveCheckpoint, pb.SaveCheckpointRequest(), grpc.StatusCode.INVALID_ARGUMENT, "worker_id must be"),
            (
                stub.ReportCheckpointPart,
                pb.ReportCheckpointPartRequest(worker_id="w", checkpoint_id="../../etc/passwd"),
                grpc.StatusCode.INVALID_ARGUMENT,
                "checkpoint_id must be a checkpoint id",
            ),
            (
                stub.LoadCheckpoint,
                pb.LoadCheckpointRequest(),
                grpc.StatusCode.NOT_FOUND,
                "task default has no committed checkpoint at any step",
            ),
        ]:
            with pytest.raises(grpc.RpcError) as raised:
                method(request, timeout=10)
            assert raised.value.code() == code
            assert message in raised.value.details()
    assert coordinator.get_json("/api/checkpoints")["checkpoints"] == []
    assert issubclass(Unimplemented, NotImplementedError)


def test_http_errors_are_json(coordinator_factory):
    coordinator = coordinator_factory()
    assert coordinator.get_json("/api/does-not-exist")["error"]["code"] == "not_found"
    assert coordinator.get_json("/api/workers?task=%00")["error"]["code"] == "invalid_argument"

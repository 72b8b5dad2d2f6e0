"""How every entry point of the SDK connects: ``Worker``, ``TrainingOrchestrator`` and ``DatasetRegistry`` take
``token=``, ``ca_file=`` and ``timeout=`` as ``CoordinatorClient`` does (the environment stays the fallback), and a
coordinator that does not answer because of TLS is reported as a TLS problem, with what to do."""

from __future__ import annotations

import logging
import signal
import socket
import time

import pytest
from test_tls import make_certificates

from conftest import FAST
from dtruntime import (
    CoordinatorUnavailable,
    DatasetRegistry,
    DeadlineExceeded,
    InvalidArgument,
    LocalCoordinator,
    NotFound,
    TrainingOrchestrator,
    Unauthenticated,
    Worker,
)
from dtruntime.client import CoordinatorClient

TOKEN = "worker-token-0123456789"


@pytest.fixture
def no_environment(monkeypatch):
    """The arguments alone must do: none of the variables they fall back to is set."""
    for name in ("DTR_WORKER_TOKEN", "DTR_CA_FILE", "DTR_COORDINATOR"):
        monkeypatch.delenv(name, raising=False)


def test_token_is_taken_as_an_argument_by_every_entry_point(coordinator_factory, no_environment):
    coordinator = coordinator_factory(args=[*FAST, "--worker-token", TOKEN, "--admin-token", "admin-0123456789"])
    address = coordinator.grpc_address
    with pytest.raises(Unauthenticated):
        DatasetRegistry(address).register("refused", total_samples=10, shard_size=5)
    with pytest.raises(Unauthenticated):
        DatasetRegistry(address, token="not-the-token").register("refused", total_samples=10, shard_size=5)

    with DatasetRegistry(address, token=TOKEN) as registry:
        assert registry.register("digits", total_samples=10, shard_size=5).num_shards == 2
    with TrainingOrchestrator(address, token=TOKEN) as orchestrator:
        assert orchestrator.register_worker("o1", "127.0.0.1", 7000, task_id="orch").rank == 0
        orchestrator.deregister_worker("o1")
    with Worker(address, "w1", token=TOKEN, task_id="work") as worker:  # unary calls and the session stream
        worker.wait_for(lambda view: view.rank == 0, timeout=10)
        assert worker.barrier("sync", expected=1).participant_count == 1


def test_the_environment_stays_the_fallback_and_the_argument_wins(coordinator_factory, no_environment, monkeypatch):
    coordinator = coordinator_factory(args=[*FAST, "--worker-token", TOKEN, "--admin-token", "admin-0123456789"])
    monkeypatch.setenv("DTR_WORKER_TOKEN", TOKEN)
    with DatasetRegistry(coordinator.grpc_address) as registry:
        assert registry.register("from-env", total_samples=10, shard_size=5).created
    with pytest.raises(Unauthenticated, match="the worker token is wrong"):
        TrainingOrchestrator(coordinator.grpc_address, token="wrong-token").register_worker("o", "127.0.0.1", 7000)


def test_ca_file_is_taken_as_an_argument_by_every_entry_point(dtr_binary, tmp_path, no_environment):
    ca, cert, key = make_certificates(tmp_path)
    with LocalCoordinator(
        dtr_binary, data_dir=tmp_path / "data", args=[*FAST, "--tls-cert", str(cert), "--tls-key", str(key)], ca_file=ca
    ) as coordinator:
        address = coordinator.grpc_address
        with DatasetRegistry(address, ca_file=str(ca)) as registry:
            assert registry.register("secure", total_samples=10, shard_size=5).num_shards == 2
        with TrainingOrchestrator(address, ca_file=str(ca)) as orchestrator:
            assert orchestrator.register_worker("o1", "127.0.0.1", 7000, task_id="orch").rank == 0
        with Worker(address, "w1", ca_file=str(ca), task_id="work") as worker:
            worker.wait_for(lambda view: view.rank == 0, timeout=10)

        # Without the CA the call fails, and the error says it is TLS and what to pass: not "is dtr serve running?".
        with pytest.raises(CoordinatorUnavailable) as plaintext:
            TrainingOrchestrator(address, timeout=5).register_worker("plain", "127.0.0.1", 7000)
        assert "serves TLS" in plaintext.value.message
        assert "ca_file=" in plaintext.value.message and "DTR_CA_FILE" in plaintext.value.message
        assert "is `dtr serve` running" not in plaintext.value.message

        # A CA that did not sign the coordinator's certificate: the verification is named.
        other = tmp_path / "other"
        other.mkdir()
        other_ca, _, _ = make_certificates(other)
        with pytest.raises(CoordinatorUnavailable, match="does not verify against the CA"):
            DatasetRegistry(address, ca_file=str(other_ca), timeout=5).register("x", total_samples=10, shard_size=5)


def test_a_ca_file_against_a_plaintext_coordinator_is_named(coordinator_factory, tmp_path, no_environment):
    coordinator = coordinator_factory(args=FAST)
    ca, _, _ = make_certificates(tmp_path)
    with pytest.raises(CoordinatorUnavailable, match="does not seem to serve TLS"):
        TrainingOrchestrator(coordinator.grpc_address, ca_file=str(ca), timeout=5).register_worker("w", "127.0.0.1", 1)


def test_nothing_listening_is_still_reported_as_unreachable(no_environment):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CoordinatorUnavailable, match="unreachable: is `dtr serve` running"):
        DatasetRegistry(f"127.0.0.1:{port}", timeout=3).register("d", total_samples=10, shard_size=5)


def test_timeout_is_taken_as_an_argument_by_every_entry_point(coordinator_factory, no_environment, caplog):
    coordinator = coordinator_factory(args=FAST)
    address = coordinator.grpc_address
    registry = DatasetRegistry(address, timeout=0.5)
    orchestrator = TrainingOrchestrator(address, timeout=0.5)
    worker = Worker(address, "w", timeout=0.5, use_stream=False).start()
    try:
        registry.register("d", total_samples=10, shard_size=5)  # connected: the calls below reach the coordinator
        orchestrator.register_worker("o", "127.0.0.1", 7000)
        assert coordinator.process is not None
        coordinator.process.send_signal(signal.SIGSTOP)  # stalled: it accepts nothing and answers nothing
        # The default timeout is 10 s: ending well before shows that the argument was used.
        for call in [
            lambda: registry.register("d", total_samples=10, shard_size=5),
            lambda: orchestrator.heartbeat("o"),
        ]:
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded, match="did not answer in time"):
                call()
            assert time.monotonic() - started < 8
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="dtruntime"):
            worker.close()  # its heartbeats and its deregistration each give up at the timeout
        assert time.monotonic() - started < 8
        assert "could not deregister w" in caplog.text and "did not answer in time" in caplog.text
    finally:
        if coordinator.process is not None:
            coordinator.process.send_signal(signal.SIGCONT)
        worker.close()
        registry.close()
        orchestrator.close()


def test_a_dataset_name_is_checked_before_anything_is_sent(no_environment):
    # Nothing listens at this address: a check that happened after sending would fail as unreachable instead.
    with DatasetRegistry("127.0.0.1:9", timeout=1) as registry:
        for bad in ["", ".", "..", "a/b", "spaced name", "ünï", "x" * 129]:
            with pytest.raises(InvalidArgument, match=r"name must be 1-128 characters of \[A-Za-z0-9._-\]") as refused:
                registry.register(bad, total_samples=10, shard_size=5)
            assert refused.value.code is None, "refused before any call"


def test_an_unregistered_dataset_names_the_sdk_call_that_registers_it(coordinator_factory, no_environment):
    coordinator = coordinator_factory(args=FAST)
    with CoordinatorClient(coordinator.grpc_address) as client:
        client.register_worker("w0", "127.0.0.1", 7000)
        with pytest.raises(NotFound, match=r"register it first \(DatasetRegistry\.register in the Python SDK"):
            client.get_shard_assignment("never-registered", "w0", 0)
        with pytest.raises(InvalidArgument):
            client.get_shard_assignment("bad name", "w0", 0)

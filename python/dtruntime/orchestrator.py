"""``TrainingOrchestrator``: the reference's entry point for registering and managing workers."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from dtruntime.client import CoordinatorClient, MembershipView, Registration


class TrainingOrchestrator:
    """Talks to a coordinator on behalf of workers (the reference's API).

    >>> orch = TrainingOrchestrator("localhost:50051")
    >>> orch.register_worker("worker-1", "localhost", 50052, gpu_count=8).rank
    0

    The address defaults to ``$DTR_COORDINATOR``, then ``localhost:50051``. For a training process that should stay
    registered, heartbeat and follow membership changes, use :class:`dtruntime.Worker` instead.

    Args:
        address: the coordinator's gRPC address.
        token: the coordinator's ``--worker-token``, sent with every call; defaults to ``$DTR_WORKER_TOKEN``.
        ca_file: for a coordinator that serves TLS (``--tls-cert``): the PEM file of the CA that signed its
            certificate; defaults to ``$DTR_CA_FILE``. Without one the connection is plaintext.
        timeout: seconds each call to the coordinator may take (default 10; barriers have their own timeout).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 10.0,
        token: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self._client = CoordinatorClient(address, timeout=timeout, token=token, ca_file=ca_file)

    @property
    def address(self) -> str:
        return self._client.address

    def register_worker(
        self,
        worker_id: str,
        host: str,
        port: int,
        gpu_count: int = 0,
        *,
        labels: Mapping[str, str] | None = None,
        task_id: str = "",
    ) -> Registration:
        """Registers a worker (idempotent while it is alive) and returns its rank, world size and epoch."""
        return self._client.register_worker(worker_id, host, port, gpu_count=gpu_count, labels=labels, task_id=task_id)

    def heartbeat(
        self,
        worker_id: str,
        *,
        membership_epoch: int = 0,
        step: int = 0,
        metrics: Mapping[str, float] | None = None,
    ) -> MembershipView:
        """Sends one heartbeat; the reply says the worker's current rank, world size, epoch and command."""
        return self._client.heartbeat(worker_id, membership_epoch=membership_epoch, step=step, metrics=metrics)

    def deregister_worker(self, worker_id: str, reason: str = "") -> int:
        """Removes a worker from its task now; returns the task's new membership epoch."""
        return self._client.deregister_worker(worker_id, reason)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> TrainingOrchestrator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

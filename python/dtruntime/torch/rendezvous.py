"""The rendezvous of a ``torch.distributed`` process group, through the coordinator.

The coordinator already knows who is in the job and at which membership epoch; what torch needs besides is a store
(a ``TCPStore``) every rank can reach. Rank 0 of the membership epoch hosts one, and its address travels in the
payload of one allreduce over the coordinator's barrier, fenced by that membership epoch: the allreduce is released
only when every member of that epoch arrived (so the ranks and the world size are the coordinator's, the same on
every rank), it fails at once when a member dies or joins meanwhile (then the rendezvous starts over at the new epoch),
and it times out naming the ranks that did not come. The same allreduce carries each rank's *standing* (what state it
holds), so an elastic job learns in this one collective which rank to take the state from.
"""

from __future__ import annotations

import datetime
import logging
import random
import socket
import time
from dataclasses import dataclass

import numpy as np
import torch.distributed as dist

from dtruntime.client import Command, MembershipView
from dtruntime.errors import (
    Aborted,
    BarrierError,
    BarrierTimeout,
    CoordinatorUnavailable,
    DeadlineExceeded,
    DtrError,
    FailedPrecondition,
    NotFound,
)
from dtruntime.worker import Worker

log = logging.getLogger("dtruntime")

# The payload: [1 per rank, rank 0's store port, its host's length, its host's bytes ..., one standing per rank].
_HEADER = 3
_HOST_BYTES = 255
# What makes a rendezvous start over at the next membership epoch: the membership changed under the allreduce, the
# coordinator went away for a moment, or this worker is between a death and its re-registration.
_MEMBERSHIP_MOVED = (Aborted, FailedPrecondition, NotFound, CoordinatorUnavailable)


class RendezvousStopped(DtrError):
    """The task was stopped (``POST /api/tasks/:id/stop``) while this worker waited to meet the others."""


class RendezvousError(DtrError, TimeoutError):
    """The ranks could not meet: ``missing_ranks`` did not arrive (at the coordinator, or at the store)."""

    def __init__(self, message: str, missing_ranks: list[int] | None = None, missing_workers: list[str] | None = None):
        super().__init__(message)
        self.missing_ranks = missing_ranks or []
        self.missing_workers = missing_workers or []


@dataclass
class Meeting:
    """What a rendezvous agreed on: this worker's view at the membership epoch, every rank's standing, and the store
    (hosted by rank 0) that every rank is connected to."""

    view: MembershipView
    standings: list[float]
    store: dist.TCPStore
    store_host: str
    store_port: int

    @property
    def rank(self) -> int:
        assert self.view.rank is not None
        return self.view.rank

    @property
    def world_size(self) -> int:
        return self.view.world_size

    @property
    def membership_epoch(self) -> int:
        return self.view.membership_epoch


def meet(
    worker: Worker,
    *,
    name: str = "torch",
    standing: float = 0.0,
    timeout: float = 600.0,
    store_host: str | None = None,
    store_timeout: float = 60.0,
) -> Meeting:
    """Meets every member of the worker's task at one membership epoch (see the module docstring).

    Waits for the task's ``min_world_size`` members first. Starts over at the new epoch whenever the membership
    changes before every member arrived. Raises :class:`RendezvousError`, naming the missing ranks, when the members
    did not all arrive within ``timeout`` seconds, or did not all reach the store within ``store_timeout``.
    """
    deadline = time.monotonic() + timeout
    host = store_host or default_store_host(worker)
    if len(host.encode()) > _HOST_BYTES:
        raise ValueError(f"store_host must be at most {_HOST_BYTES} bytes (got {host!r})")
    pause = 0.05
    while True:
        view = _member_view(worker, deadline, timeout)
        if view.command == Command.STOP:
            raise RendezvousStopped(f"task {worker.task_id} was stopped while worker {worker.worker_id} waited to meet")
        try:
            return _meet_at(
                worker,
                view,
                name=name,
                standing=standing,
                deadline=deadline,
                host=host,
                store_timeout=store_timeout,
            )
        except BarrierTimeout as error:
            if worker.membership_epoch != view.membership_epoch and time.monotonic() < deadline:
                continue
            raise RendezvousError(
                f"rendezvous {name!r} of task {worker.task_id} at membership epoch {view.membership_epoch}: ranks "
                f"{error.missing_ranks} ({', '.join(error.missing_workers) or 'unknown workers'}) did not arrive "
                f"within {timeout:g} s: every member of the task must call it (check their logs; a worker that does "
                "not train should leave the task)",
                error.missing_ranks,
                error.missing_workers,
            ) from error
        except (BarrierError, *_MEMBERSHIP_MOVED, DeadlineExceeded) as error:
            if time.monotonic() > deadline:
                raise RendezvousError(
                    f"rendezvous {name!r} of task {worker.task_id} did not complete within {timeout:g} s: {error}",
                    getattr(error, "missing_ranks", None),
                    getattr(error, "missing_workers", None),
                ) from error
            log.debug(
                "worker %s: rendezvous at epoch %d interrupted (%s)", worker.worker_id, view.membership_epoch, error
            )
            time.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, 1.0)


def _meet_at(
    worker: Worker,
    view: MembershipView,
    *,
    name: str,
    standing: float,
    deadline: float,
    host: str,
    store_timeout: float,
) -> Meeting:
    assert view.rank is not None
    rank, world = view.rank, view.world_size
    store_delay = datetime.timedelta(seconds=store_timeout)
    store: dist.TCPStore | None = None
    payload = np.zeros(_HEADER + _HOST_BYTES + world)
    payload[0] = 1.0
    payload[_HEADER + _HOST_BYTES + rank] = standing
    if rank == 0:
        # Port 0: the kernel picks a free one; the store listens on every interface.
        store = dist.TCPStore(host, 0, None, True, timeout=store_delay, wait_for_workers=False)
        encoded = np.frombuffer(host.encode(), dtype=np.uint8)
        payload[1], payload[2] = store.port, len(encoded)
        payload[_HEADER : _HEADER + len(encoded)] = encoded
    remaining = max(1.0, deadline - time.monotonic())
    totals = worker.allreduce(
        payload, op="sum", name=f"{name}-rendezvous", timeout=remaining, membership_epoch=view.membership_epoch
    )
    if int(totals[0]) != world:
        raise FailedPrecondition(f"{int(totals[0])} ranks met where {world} were expected: the membership moved")
    port, length = int(totals[1]), int(totals[2])
    store_host = bytes(totals[_HEADER : _HEADER + length].astype(np.uint8)).decode()
    standings = [float(value) for value in totals[_HEADER + _HOST_BYTES :]]
    if store is None:
        try:
            store = dist.TCPStore(store_host, port, None, False, timeout=store_delay)
        except RuntimeError as error:
            raise RendezvousError(
                f"rank {rank} ({worker.worker_id}) could not connect to the store of rank 0 at {store_host}:{port} "
                f"within {store_timeout:g} s ({error}): rank 0 publishes the address it reaches the coordinator "
                "through; pass store_host= an address every worker can reach",
                [0],
            ) from error
    _wait_for_ranks(store, worker, rank=rank, world=world, timeout=store_timeout, where=f"{store_host}:{port}")
    return Meeting(view, standings, store, store_host, port)


def _wait_for_ranks(store: dist.TCPStore, worker: Worker, *, rank: int, world: int, timeout: float, where: str) -> None:
    """Every rank announces itself in the store, then waits for the others: a rank that cannot reach the store is
    named here instead of hanging the process group's creation."""
    store.set(f"ready/{rank}", worker.worker_id)
    store.add("ready", 1)
    deadline = time.monotonic() + timeout
    pause = 0.001
    while store.add("ready", 0) < world:
        if time.monotonic() > deadline:
            missing = [other for other in range(world) if not _has(store, f"ready/{other}")]
            raise RendezvousError(
                f"ranks {missing} did not reach the store at {where} within {timeout:g} s: check that every worker "
                "can connect to that address (store_host=) and that those ranks are alive",
                missing,
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _has(store: dist.TCPStore, key: str) -> bool:
    try:
        store.wait([key], datetime.timedelta(milliseconds=1))
        return True
    except RuntimeError:
        return False


def _member_view(worker: Worker, deadline: float, timeout: float) -> MembershipView:
    """Waits until this worker is a member of a task with at least its ``min_world_size`` members."""
    needed = max(1, worker.task.min_world_size)
    try:
        return worker.wait_for(
            lambda view: view.command == Command.STOP or (view.rank is not None and view.world_size >= needed),
            timeout=max(0.0, deadline - time.monotonic()),
        )
    except TimeoutError:
        raise RendezvousError(
            f"task {worker.task_id} has fewer than the {needed} workers it needs after {timeout:g} s: restart the "
            "missing workers, or lower the task's min_world_size"
        ) from None


def default_store_host(worker: Worker) -> str:
    """The address of this machine's interface towards the coordinator: where the other workers, which reach the
    same coordinator, are most likely to reach this one (``127.0.0.1`` when the coordinator is on loopback)."""
    host, _, port = worker.coordinator.rpartition(":")
    host = host.strip("[]") or "localhost"
    try:
        infos = socket.getaddrinfo(host, int(port or 0), type=socket.SOCK_DGRAM)
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as probe:
                probe.connect(address)  # a UDP "connection" sends nothing: it only picks the route
                return str(probe.getsockname()[0])
    except (OSError, ValueError):
        pass
    return socket.gethostname()

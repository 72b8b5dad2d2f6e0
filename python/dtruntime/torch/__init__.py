"""dtruntime.torch: PyTorch on the coordinator (importable where torch is installed; see docs/TORCH.md).

- :func:`init_process_group` forms ``torch.distributed``'s default process group from the coordinator: the rank and
  world size of the current membership epoch, and a store hosted by rank 0 whose address the coordinator carries.
- :class:`ElasticTrainer` runs DistributedDataParallel that re-forms its process group when workers die, restart or
  join, without restarting the processes that are still alive, and resumes from checkpoints.
- :class:`LedgerBatchSampler` feeds a ``DataLoader`` from the coordinator's shard ledger: every sample exactly once
  per epoch across the job, through deaths and re-formings.
"""

from __future__ import annotations

try:
    import torch.distributed as _dist
except ImportError as error:  # pragma: no cover - the message is the point
    raise ImportError(
        "dtruntime.torch needs PyTorch: install torch (on Debian: apt-get install python3-torch, and a venv made with "
        "--system-site-packages; see docs/TORCH.md)"
    ) from error

from dtruntime.torch.elastic import ElasticTrainer, Formation, Stateful, Step
from dtruntime.torch.group import Group, form
from dtruntime.torch.rendezvous import Meeting, RendezvousError, RendezvousStopped, default_store_host, meet
from dtruntime.torch.sampler import LedgerBatchSampler
from dtruntime.worker import Worker

if not _dist.is_available():  # pragma: no cover - builds without distributed support
    raise ImportError("dtruntime.torch needs a PyTorch built with torch.distributed (torch.distributed.is_available())")


def init_process_group(
    worker: Worker,
    backend: str = "gloo",
    *,
    timeout: float = 300.0,
    rendezvous_timeout: float = 600.0,
    store_host: str | None = None,
    store_timeout: float = 60.0,
    name: str = "torch",
) -> Group:
    """Initialises ``torch.distributed``'s default process group with the coordinator's ranks.

    Every member of the worker's task calls it; it returns once they all met at one membership epoch (the rank and
    world size are the coordinator's: ``group.rank``, ``group.world_size``, also ``dist.get_rank()``) and the process
    group exists. Rank 0 hosts the ``TCPStore``; the others learn its address through the coordinator.

    Args:
        worker: the started :class:`~dtruntime.Worker` of this process (it has waited for the task's
            ``min_world_size`` members).
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (GPUs).
        timeout: the process group's timeout for each collective, in seconds.
        rendezvous_timeout: how long to wait for every member at the coordinator; the error names the ranks (and
            workers) that did not come.
        store_host: the address rank 0 publishes for its store (default: its interface towards the coordinator).
        store_timeout: how long the ranks wait for each other at the store; the error names the ranks that did not
            reach it.
        name: the coordinator barrier's name (``<name>-rendezvous``).

    Returns:
        The :class:`Group`; leaving ``with group:`` (or ``group.destroy()``) destroys the process group. When the
        membership changes later, the group does not follow: :class:`ElasticTrainer` re-forms it.
    """
    meeting = meet(
        worker,
        name=name,
        timeout=rendezvous_timeout,
        store_host=store_host,
        store_timeout=store_timeout,
    )
    return form(meeting, backend, timeout, worker.coordinator)


__all__ = [
    "ElasticTrainer",
    "Formation",
    "Group",
    "LedgerBatchSampler",
    "Meeting",
    "RendezvousError",
    "RendezvousStopped",
    "Stateful",
    "Step",
    "default_store_host",
    "init_process_group",
    "meet",
]

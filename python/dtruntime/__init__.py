"""dtruntime: the Python SDK of the dtruntime coordinator (``dtr serve``).

Training processes join a job with :class:`Worker`; :class:`TrainingOrchestrator` is the low-level client with the
reference's API names; :class:`LocalCoordinator` runs a coordinator binary for scripts and tests.
"""

from dtruntime.client import (
    BarrierResult,
    Command,
    CoordinatorClient,
    DatasetInfo,
    MembershipView,
    Registration,
    WorkerStatus,
)
from dtruntime.datasets import DatasetRegistry
from dtruntime.errors import (
    Aborted,
    AlreadyExists,
    BarrierAborted,
    BarrierError,
    BarrierTimeout,
    CoordinatorUnavailable,
    DeadlineExceeded,
    DtrError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unimplemented,
)
from dtruntime.launcher import LocalCoordinator
from dtruntime.orchestrator import TrainingOrchestrator
from dtruntime.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "Aborted",
    "AlreadyExists",
    "BarrierAborted",
    "BarrierError",
    "BarrierResult",
    "BarrierTimeout",
    "Command",
    "CoordinatorClient",
    "CoordinatorUnavailable",
    "DatasetInfo",
    "DatasetRegistry",
    "DeadlineExceeded",
    "DtrError",
    "FailedPrecondition",
    "InvalidArgument",
    "LocalCoordinator",
    "MembershipView",
    "NotFound",
    "PermissionDenied",
    "Registration",
    "ResourceExhausted",
    "TrainingOrchestrator",
    "Unauthenticated",
    "Unimplemented",
    "Worker",
    "WorkerStatus",
]

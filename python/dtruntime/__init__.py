"""dtruntime: the Python SDK of the dtruntime coordinator (``dtr serve``).

Training processes join a job with :class:`Worker` and train in step with :class:`DataParallel`;
:class:`TrainingOrchestrator` is the low-level client with the
reference's API names; :class:`CheckpointManager` saves and loads checkpoints (standalone, or as one rank of the
coordinator's two-phase commit); :class:`LocalCoordinator` runs a coordinator binary for scripts and tests.
"""

from dtruntime.checkpoint import CheckpointManager, LoadedCheckpoint, SavedCheckpoint, expired_checkpoints
from dtruntime.checkpoint_manifest import (
    CheckpointManifest,
    CheckpointPart,
    CheckpointStatus,
    DatasetPosition,
    StoreLocation,
)
from dtruntime.checkpoint_store import S3Options
from dtruntime.client import (
    BarrierResult,
    CheckpointLookup,
    CheckpointReport,
    CheckpointTicket,
    Command,
    CoordinatorClient,
    DatasetInfo,
    MembershipView,
    Registration,
    ShardAssignment,
    ShardLease,
    ShardProgress,
    TaskSettings,
    WorkerStatus,
)
from dtruntime.data_parallel import DataParallel
from dtruntime.datasets import DatasetRegistry
from dtruntime.errors import (
    Aborted,
    AlreadyExists,
    BarrierAborted,
    BarrierError,
    BarrierMismatch,
    BarrierTimeout,
    CheckpointAborted,
    CheckpointCorrupted,
    CheckpointError,
    CheckpointNotFound,
    CheckpointStorageError,
    CoordinatorUnavailable,
    DeadlineExceeded,
    DtrError,
    FailedPrecondition,
    InvalidArgument,
    NotAMember,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ShardMoved,
    StaleEpoch,
    TaskFull,
    Unauthenticated,
    Unimplemented,
    UnknownWorker,
)
from dtruntime.launcher import LocalCoordinator
from dtruntime.orchestrator import TrainingOrchestrator
from dtruntime.worker import EpochReader, Worker

__version__ = "0.1.0"

__all__ = [
    "Aborted",
    "AlreadyExists",
    "BarrierAborted",
    "BarrierError",
    "BarrierMismatch",
    "BarrierResult",
    "BarrierTimeout",
    "CheckpointAborted",
    "CheckpointCorrupted",
    "CheckpointError",
    "CheckpointLookup",
    "CheckpointManager",
    "CheckpointManifest",
    "CheckpointNotFound",
    "CheckpointPart",
    "CheckpointReport",
    "CheckpointStatus",
    "CheckpointStorageError",
    "CheckpointTicket",
    "Command",
    "CoordinatorClient",
    "CoordinatorUnavailable",
    "DataParallel",
    "DatasetInfo",
    "DatasetPosition",
    "DatasetRegistry",
    "DeadlineExceeded",
    "DtrError",
    "EpochReader",
    "FailedPrecondition",
    "InvalidArgument",
    "LoadedCheckpoint",
    "LocalCoordinator",
    "MembershipView",
    "NotAMember",
    "NotFound",
    "PermissionDenied",
    "Registration",
    "ResourceExhausted",
    "S3Options",
    "SavedCheckpoint",
    "ShardAssignment",
    "ShardLease",
    "ShardMoved",
    "ShardProgress",
    "StaleEpoch",
    "StoreLocation",
    "TaskFull",
    "TaskSettings",
    "TrainingOrchestrator",
    "Unauthenticated",
    "Unimplemented",
    "UnknownWorker",
    "Worker",
    "WorkerStatus",
    "expired_checkpoints",
]

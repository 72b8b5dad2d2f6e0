"""What the checkpoint committers share: a save's request, its result, and how a part gets written."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from dtruntime.checkpoint_manifest import CheckpointManifest, CheckpointStatus
from dtruntime.checkpoint_store import BlobStore, WriteResult


@dataclass(frozen=True)
class SaveRequest:
    """A save as ``CheckpointManager.save`` checked it."""

    step: int
    epoch: int
    metrics: dict[str, float]
    metadata: dict[str, str]
    membership_epoch: int
    rank: int | None
    """The worker's rank when save() was called: the rank whose state this is."""


@dataclass(frozen=True)
class SavedCheckpoint:
    """A finished save: the checkpoint, this rank's part and, once committed, the manifest."""

    checkpoint_id: str
    step: int
    epoch: int
    rank: int
    world_size: int
    status: CheckpointStatus
    path: str
    """Where this rank's part is: a file path or an ``s3://bucket/key`` URL."""
    object_key: str
    size_bytes: int
    sha256: str
    write_seconds: float
    manifest: CheckpointManifest | None


PartWriter = Callable[[BlobStore, str], WriteResult]
"""Writes the part to a key of a store (here, or by waiting for a forked child that writes it)."""


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.timezone.utc)

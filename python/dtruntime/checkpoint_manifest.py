"""What a committed checkpoint is: its manifest (parts, sizes, sha256, metrics, data position) and where it is stored.

The same manifest comes from the coordinator (``LoadCheckpoint``, ``ReportCheckpointPart``) and from a standalone
store's ``manifest.json``; both spellings map to :class:`CheckpointManifest`. The JSON uses the proto's field names
(docs/CHECKPOINTS.md), and the coordinator writes the same document for distributed checkpoints.
"""

from __future__ import annotations

import datetime
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dtruntime.v1 import coordinator_pb2 as pb

MANIFEST_FORMAT = "dtruntime.checkpoint-manifest.v1"
"""The coordinator writes the same format (Sources/Checkpoint/CheckpointManifest.swift)."""


class CheckpointStatus(enum.Enum):
    """Where a checkpoint is in its two-phase commit."""

    PENDING = pb.CHECKPOINT_STATUS_PENDING
    COMMITTED = pb.CHECKPOINT_STATUS_COMMITTED
    ABORTED = pb.CHECKPOINT_STATUS_ABORTED
    DELETED = pb.CHECKPOINT_STATUS_DELETED


@dataclass(frozen=True)
class StoreLocation:
    """A checkpoint store: ``file:///abs/dir`` or ``s3://bucket/prefix`` (S3 also has an endpoint and a region)."""

    uri: str
    endpoint: str = ""
    region: str = ""

    @classmethod
    def from_proto(cls, store: pb.StorageLocation) -> StoreLocation:
        return cls(uri=store.uri, endpoint=store.endpoint, region=store.region)

    def to_json(self) -> dict[str, str]:
        return {"uri": self.uri, "endpoint": self.endpoint, "region": self.region}


@dataclass(frozen=True)
class CheckpointPart:
    """One rank's part: where it is (relative to the store) and what its bytes must hash to."""

    rank: int
    object_key: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class DatasetPosition:
    """A dataset epoch's ledger position when the checkpoint was taken: finished shards, and cursors of started ones."""

    dataset: str
    epoch: int
    done_shard_ids: tuple[int, ...] = ()
    partial: tuple[tuple[int, int], ...] = ()
    """``(shard_id, consumed)`` of shards that were partly consumed."""


@dataclass(frozen=True)
class CheckpointManifest:
    """A committed checkpoint."""

    checkpoint_id: str
    """e.g. ``default/step-000000001000-a1``: the task, the step, and the attempt."""
    task_id: str
    step: int
    epoch: int
    world_size: int
    parts: tuple[CheckpointPart, ...]
    metrics: Mapping[str, float]
    metadata: Mapping[str, str]
    created_at: datetime.datetime
    committed_at: datetime.datetime
    store: StoreLocation
    manifest_key: str
    datasets: tuple[DatasetPosition, ...] = field(default=())

    def part_for(self, rank: int | None) -> CheckpointPart:
        """This rank's part if the checkpoint has one, else rank 0's (a rank that joined after the save, or a job
        restarted with more workers, starts from rank 0's state)."""
        by_rank = {part.rank: part for part in self.parts}
        if rank is not None and rank in by_rank:
            return by_rank[rank]
        if 0 in by_rank:
            return by_rank[0]
        raise ValueError(f"checkpoint {self.checkpoint_id} has no part for rank {rank} nor rank 0")

    @property
    def size_bytes(self) -> int:
        """Bytes of all parts together."""
        return sum(part.size_bytes for part in self.parts)

    # MARK: wire and JSON

    @classmethod
    def from_proto(cls, manifest: pb.CheckpointManifest) -> CheckpointManifest:
        return cls(
            checkpoint_id=manifest.checkpoint_id,
            task_id=manifest.task_id,
            step=manifest.step,
            epoch=manifest.epoch,
            world_size=manifest.world_size,
            parts=tuple(
                CheckpointPart(part.rank, part.object_key, part.size_bytes, part.sha256) for part in manifest.parts
            ),
            metrics=dict(manifest.metrics),
            metadata=dict(manifest.metadata),
            created_at=_from_ms(manifest.created_at_unix_ms),
            committed_at=_from_ms(manifest.committed_at_unix_ms),
            store=StoreLocation.from_proto(manifest.store),
            manifest_key=manifest.manifest_key,
            datasets=tuple(
                DatasetPosition(
                    position.dataset,
                    position.epoch,
                    tuple(position.done_shard_ids),
                    tuple((cursor.shard_id, cursor.consumed) for cursor in position.partial),
                )
                for position in manifest.datasets
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON (proto field names; non-finite metrics as the strings "NaN", "Infinity", "-Infinity",
        as in proto3's JSON mapping, so that strict JSON parsers read it)."""
        return {
            "format": MANIFEST_FORMAT,
            "checkpoint_id": self.checkpoint_id,
            "task_id": self.task_id,
            "step": self.step,
            "epoch": self.epoch,
            "world_size": self.world_size,
            "parts": [
                {"rank": p.rank, "object_key": p.object_key, "size_bytes": p.size_bytes, "sha256": p.sha256}
                for p in self.parts
            ],
            "metrics": {name: _json_double(value) for name, value in self.metrics.items()},
            "metadata": dict(self.metadata),
            "datasets": [
                {
                    "dataset": d.dataset,
                    "epoch": d.epoch,
                    "done_shard_ids": list(d.done_shard_ids),
                    "partial": [{"shard_id": shard, "consumed": consumed} for shard, consumed in d.partial],
                }
                for d in self.datasets
            ],
            "created_at_unix_ms": _to_ms(self.created_at),
            "committed_at_unix_ms": _to_ms(self.committed_at),
            "store": self.store.to_json(),
            "manifest_key": self.manifest_key,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckpointManifest:
        """Parses :meth:`to_json`'s output (or protobuf's JSON of a manifest, whose 64-bit integers are strings).

        Raises ``ValueError`` / ``KeyError`` / ``TypeError`` on a malformed manifest.
        """
        store = data.get("store") or {}
        return cls(
            checkpoint_id=str(data["checkpoint_id"]),
            task_id=str(data.get("task_id", "")),
            step=int(data["step"]),
            epoch=int(data.get("epoch", 0)),
            world_size=int(data.get("world_size", 1)),
            parts=tuple(
                CheckpointPart(
                    int(part.get("rank", 0)), str(part["object_key"]), int(part["size_bytes"]), str(part["sha256"])
                )
                for part in data["parts"]
            ),
            metrics={str(name): float(value) for name, value in (data.get("metrics") or {}).items()},
            metadata={str(name): str(value) for name, value in (data.get("metadata") or {}).items()},
            created_at=_from_ms(int(data.get("created_at_unix_ms", 0))),
            committed_at=_from_ms(int(data.get("committed_at_unix_ms", 0))),
            store=StoreLocation(
                str(store.get("uri", "")), str(store.get("endpoint", "")), str(store.get("region", ""))
            ),
            manifest_key=str(data.get("manifest_key", "")),
            datasets=tuple(
                DatasetPosition(
                    str(position["dataset"]),
                    int(position.get("epoch", 0)),
                    tuple(int(shard) for shard in position.get("done_shard_ids", ())),
                    tuple(
                        (int(cursor["shard_id"]), int(cursor.get("consumed", 0)))
                        for cursor in position.get("partial", ())
                    ),
                )
                for position in data.get("datasets") or ()
            ),
        )


def _json_double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _from_ms(unix_ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(unix_ms / 1000, tz=datetime.timezone.utc)


def _to_ms(moment: datetime.datetime) -> int:
    return round(moment.timestamp() * 1000)

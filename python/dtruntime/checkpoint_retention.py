"""Which committed checkpoints a retention policy deletes: the coordinator's ``RetentionPolicy``
(``Sources/Checkpoint/RetentionPolicy.swift``), for standalone checkpoints. ``testdata/retention_vectors.json`` holds
the cases both sides are tested against."""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from dtruntime.checkpoint_keys import parse_checkpoint_id
from dtruntime.checkpoint_manifest import CheckpointManifest


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep the ``keep_last`` last committed checkpoints plus the ``keep_best`` best by ``metric``."""

    keep_last: int
    keep_best: int
    metric: str | None
    mode: Literal["min", "max"]

    @classmethod
    def checked(
        cls, keep_last: int | None, keep_best: int, metric: str | None, mode: Literal["min", "max"]
    ) -> RetentionPolicy | None:
        """The policy of ``CheckpointManager``'s arguments; None when it keeps every checkpoint (``keep_last=None``,
        the manager's spelling of the coordinator's ``--checkpoint-keep-last 0``). Raises ``ValueError`` for
        arguments that say nothing sensible."""
        if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1):
            raise ValueError(f"keep_last must be an integer >= 1, or None to keep every checkpoint (got {keep_last!r})")
        if not isinstance(keep_best, int) or keep_best < 0:
            raise ValueError(f"keep_best must be an integer >= 0 (got {keep_best!r})")
        if keep_best and not metric:
            raise ValueError("keep_best needs best_metric, the metric that ranks checkpoints (e.g. best_metric='loss')")
        if keep_best and keep_last is None:
            raise ValueError("keep_best needs keep_last (without keep_last every checkpoint is kept anyway)")
        if mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' (lower is better) or 'max' (got {mode!r})")
        return None if keep_last is None else cls(keep_last, keep_best, metric, mode)

    def expired(self, manifests: Iterable[CheckpointManifest]) -> list[CheckpointManifest]:
        """The checkpoints this policy deletes (see :func:`expired_checkpoints`)."""
        return expired_checkpoints(
            manifests, keep_last=self.keep_last, keep_best=self.keep_best, metric=self.metric, mode=self.mode
        )


def expired_checkpoints(
    manifests: Iterable[CheckpointManifest],
    *,
    keep_last: int,
    keep_best: int = 0,
    metric: str | None = None,
    mode: Literal["min", "max"] = "min",
) -> list[CheckpointManifest]:
    """The checkpoints a retention policy deletes, in commit order: all but the ``keep_last`` last committed and the
    ``keep_best`` best by ``metric`` (ties go to the newer; a missing or NaN metric never counts as best). The latest
    checkpoint is always kept; ``keep_last=0`` keeps every checkpoint (as the coordinator's
    ``--checkpoint-keep-last 0`` does).

    The coordinator's ``RetentionPolicy`` rules; "last" is by commit order (``committed_at``, then step and attempt),
    which after a rollback is not the highest step.
    """
    if keep_last < 0 or keep_best < 0:
        raise ValueError(f"keep_last and keep_best must be >= 0 (got {keep_last} and {keep_best})")
    if keep_last == 0:
        return []
    newest_first = sorted(manifests, key=commit_order, reverse=True)
    keep = {manifest.checkpoint_id for manifest in newest_first[:keep_last]}
    if keep_best > 0 and metric:
        ranked = [m for m in newest_first if not math.isnan(m.metrics.get(metric, math.nan))]
        ranked.sort(key=lambda m: m.metrics[metric] if mode == "min" else -m.metrics[metric])  # stable: newer first
        keep.update(manifest.checkpoint_id for manifest in ranked[:keep_best])
    return [manifest for manifest in reversed(newest_first) if manifest.checkpoint_id not in keep]


def commit_order(manifest: CheckpointManifest) -> tuple[datetime.datetime, int, int]:
    """The sort key of commit order: the commit time, then the step and the attempt (for equal times)."""
    key = parse_checkpoint_id(manifest.checkpoint_id)
    return (manifest.committed_at, manifest.step, key.attempt if key is not None else 0)

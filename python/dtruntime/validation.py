"""The rules the SDK checks before it sends anything: the coordinator's own (``Sources/RuntimeCore/Validation.swift``,
``TaskID``, ``ObjectKey``), so that a bad value fails where it was written, with the same rule in the message.

Both sides read ``testdata/name_vectors.json`` in their tests, so the two copies of each rule cannot drift apart.
Every check raises ``ValueError`` naming the field and the rule; nothing here talks to the coordinator.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import SupportsIndex, TypeGuard

import numpy as np

MAX_INT64 = 2**63 - 1
MAX_METRICS = 256
"""Metrics in one heartbeat or one checkpoint (``Validation.maxMetrics``)."""
MAX_METADATA = 64
"""Metadata entries of one checkpoint."""
MAX_METADATA_VALUE_BYTES = 4096
MAX_NAME_CHARS = 128
"""Dataset names, metric names and metadata keys."""
MAX_TASK_CHARS = 64
MAX_KEY_BYTES = 512
"""Longest object key of a checkpoint store (``ObjectKey.maxLength``; S3's own limit is 1024)."""

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


def is_name_char(char: str) -> bool:
    """``[A-Za-z0-9._-]``: the characters of names that end up in paths and object keys."""
    return char in _NAME_CHARS


def is_printable_token(value: str) -> bool:
    """Every character is printable ASCII other than space (0x21-0x7E)."""
    return all(0x21 <= ord(char) <= 0x7E for char in value)


def is_name(value: object) -> TypeGuard[str]:
    """A dataset's name: 1-128 characters of ``[A-Za-z0-9._-]``, not ``.`` or ``..`` (``Validation.name``)."""
    return _is_path_name(value, MAX_NAME_CHARS)


def is_task_id(value: object) -> TypeGuard[str]:
    """A task's name: 1-64 characters of ``[A-Za-z0-9._-]``, not ``.`` or ``..`` (``TaskID``)."""
    return _is_path_name(value, MAX_TASK_CHARS)


def is_metric_name(value: object) -> TypeGuard[str]:
    """A metric name or a metadata key: 1-128 printable ASCII characters without spaces."""
    return isinstance(value, str) and 1 <= len(value) <= MAX_NAME_CHARS and is_printable_token(value)


def is_object_key(value: object) -> TypeGuard[str]:
    """A key relative to a checkpoint store's root that cannot name anything outside it: 1-512 bytes of ``/``-separated
    ``[A-Za-z0-9._-]`` segments, none empty, ``.`` or ``..`` (``ObjectKey``)."""
    if not isinstance(value, str) or not 1 <= len(value.encode()) <= MAX_KEY_BYTES:
        return False
    return all(_is_path_name(segment, MAX_KEY_BYTES) for segment in value.split("/"))


def _is_path_name(value: object, longest: int) -> TypeGuard[str]:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= longest
        and all(char in _NAME_CHARS for char in value)
        and value not in (".", "..")
    )


# MARK: checks that raise


def name(value: object, field: str = "name") -> str:
    """``value`` if :func:`is_name`; else ``ValueError``."""
    if not is_name(value):
        raise ValueError(
            f"{field} must be 1-{MAX_NAME_CHARS} characters of [A-Za-z0-9._-], not . or .. (got {value!r})"
        )
    assert isinstance(value, str)
    return value


def task_id(value: object, field: str = "task_id") -> str:
    """``value`` if :func:`is_task_id`; else ``ValueError``."""
    if not is_task_id(value):
        raise ValueError(
            f"{field} must be 1-{MAX_TASK_CHARS} characters of [A-Za-z0-9._-], not . or .. (got {value!r})"
        )
    assert isinstance(value, str)
    return value


def object_key(value: str, field: str = "object_key") -> str:
    """``value`` if :func:`is_object_key`; else ``ValueError``."""
    if not is_object_key(value):
        raise ValueError(
            f"{field} must be 1-{MAX_KEY_BYTES} bytes of /-separated [A-Za-z0-9._-] segments, none empty, . or .. "
            f"(got {value!r})"
        )
    return value


def count(field: str, value: object) -> int:
    """A step or an epoch: an integer (Python or numpy, not bool) from 0 to 2^63-1."""
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise ValueError(f"{field} must be an integer >= 0 (got {value!r})")
    number = operator.index(value)
    if not 0 <= number <= MAX_INT64:
        raise ValueError(f"{field} must be an integer >= 0 (got {number})")
    return number


def metric_names(names: Mapping[str, object], what: str) -> None:
    """At most 256 entries, each named as :func:`is_metric_name` says (``what``: "report", "checkpoint")."""
    if len(names) > MAX_METRICS:
        raise ValueError(f"at most {MAX_METRICS} metrics per {what} (got {len(names)})")
    for key in names:
        if not is_metric_name(key):
            raise ValueError(
                f"metric names must be 1-{MAX_NAME_CHARS} printable ASCII characters without spaces (got {key!r})"
            )


def checkpoint_metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    """A checkpoint's metrics: named as :func:`metric_names` says, finite numbers (they rank checkpoints for keep-best
    retention, and the coordinator refuses NaN and infinities there)."""
    values = dict(metrics or {})
    metric_names(values, "checkpoint")
    result: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"metric {key!r} must be a number (got {value!r})")
        if not math.isfinite(value):
            raise ValueError(f"metric {key!r} must be finite (got {value!r}): leave it out of metrics=")
        result[key] = float(value)
    return result


def checkpoint_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """A checkpoint's metadata: at most 64 entries; keys as metric names, values str of at most 4096 bytes."""
    values = dict(metadata or {})
    if len(values) > MAX_METADATA:
        raise ValueError(f"at most {MAX_METADATA} metadata entries per checkpoint (got {len(values)})")
    for key, value in values.items():
        if not is_metric_name(key):
            raise ValueError(
                f"metadata keys must be 1-{MAX_NAME_CHARS} printable ASCII characters without spaces (got {key!r})"
            )
        if not isinstance(value, str):
            raise ValueError(f"metadata values must be str (got {type(value).__name__} for {key!r})")
        if len(value.encode()) > MAX_METADATA_VALUE_BYTES:
            raise ValueError(
                f"metadata[{key!r}] must be at most {MAX_METADATA_VALUE_BYTES} bytes (got {len(value.encode())})"
            )
    return values

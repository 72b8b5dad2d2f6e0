"""The snapshotter: how ``save(blocking=False)`` captures the state before it returns, so the caller may change it.

``"copy"`` copies the encoded state into host buffers, reused from one save to the next; ``"fork"`` forks a child
process that sees the state as it is at that instant, copy-on-write, and writes the part (``checkpoint_fork``). Either
way the result is a :data:`~dtruntime.checkpoint_save.PartWriter` the committers run on the background thread.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from dtruntime.checkpoint_fork import ForkedWrite
from dtruntime.checkpoint_format import EncodedState
from dtruntime.checkpoint_save import PartWriter
from dtruntime.checkpoint_store import BlobStore, S3Options, WriteResult

SnapshotMode = Literal["copy", "fork"]


@dataclass
class Snapshot:
    """A captured state: ``write`` writes it as a part; :meth:`Snapshotter.release` frees its buffers after."""

    write: PartWriter
    buffers: list[np.ndarray] = field(default_factory=list)


class Snapshotter:
    """Captures states for background saves (``mode``), holding at most ``capacity`` idle staging buffers."""

    def __init__(self, mode: SnapshotMode, capacity: int, s3: S3Options) -> None:
        self.mode = mode
        self._staging = StagingPool(capacity)
        self._s3 = s3

    def copy(self, encoded: EncodedState) -> Snapshot:
        """Copies the state into staging buffers; the snapshot's part is written from them."""
        buffers: list[np.ndarray] = []

        def allocate(size: int) -> np.ndarray:
            buffers.append(self._staging.take(size))
            return buffers[-1]

        try:
            copied = encoded.snapshot(allocate)
        except BaseException:
            self._staging.give(*buffers)
            raise

        def write(store: BlobStore, key: str) -> WriteResult:
            return store.write_part(key, copied)

        return Snapshot(write, buffers)

    def fork(self, encoded: EncodedState, store: BlobStore, key: str) -> Snapshot:
        """Forks a child that writes the state to ``key`` of ``store`` now; the snapshot's writer waits for it (the
        destination is fixed at the fork: the writer must be run with the same store and key)."""
        child = ForkedWrite.start(store, key, encoded, s3=self._s3)

        def write(_store: BlobStore, _key: str) -> WriteResult:
            return child.result()

        return Snapshot(write)

    def release(self, snapshot: Snapshot) -> None:
        """Returns the snapshot's buffers for reuse (its part is written, or will not be)."""
        self._staging.give(*snapshot.buffers)
        snapshot.buffers = []

    def clear(self) -> None:
        """Frees the idle buffers."""
        self._staging.clear()


class StagingPool:
    """Host buffers for the snapshots of background saves, reused from one save to the next.

    Copying into memory that is already mapped is several times faster than into fresh pages (the first touch of each
    page costs a fault), which is most of what ``save(blocking=False)`` costs the caller. At most ``capacity`` idle
    buffers are kept; :meth:`clear` frees them.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._idle: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, size: int) -> np.ndarray:
        with self._lock:
            fitting = [buffer for buffer in self._idle if buffer.nbytes >= size]
            if fitting:
                best = min(fitting, key=lambda buffer: buffer.nbytes)
                self._idle = [buffer for buffer in self._idle if buffer is not best]
                return best
            if self._idle:  # too small for this state: free one before allocating, so memory stays bounded
                self._idle.remove(max(self._idle, key=lambda buffer: buffer.nbytes))
        return np.empty(max(size, 1), dtype=np.uint8)

    def give(self, *buffers: np.ndarray) -> None:
        with self._lock:
            self._idle.extend(buffers)
            while len(self._idle) > self._capacity:
                self._idle.remove(min(self._idle, key=lambda buffer: buffer.nbytes))

    def clear(self) -> None:
        with self._lock:
            self._idle.clear()

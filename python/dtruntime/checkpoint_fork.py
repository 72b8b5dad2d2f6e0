"""Copy-on-write snapshots for background saves: the part is written by a forked child process.

``os.fork()`` gives the child the parent's memory as it is at that instant, shared copy-on-write: the fork costs a few
milliseconds whatever the state's size (the kernel copies page tables, not pages), and a page is copied only when
the parent writes to it afterwards. The child writes the part and exits; the parent's background thread collects the
result and goes on with the checkpoint (report, manifest). The child only encodes and writes bytes: it never touches
gRPC, so the parent's channels and threads are not used across the fork.
"""

from __future__ import annotations

import json
import os
from typing import Any

from dtruntime.checkpoint_format import EncodedState
from dtruntime.checkpoint_store import BlobStore, S3Options, WriteResult, open_store
from dtruntime.errors import CheckpointStorageError


class ForkedWrite:
    """A part being written by a child process; :meth:`result` waits for it."""

    def __init__(self, pid: int, pipe: int, key: str) -> None:
        self._pid = pid
        self._pipe = pipe
        self._key = key

    @classmethod
    def start(cls, store: BlobStore, key: str, encoded: EncodedState, *, s3: S3Options) -> ForkedWrite:
        """Forks; the child writes ``encoded`` to ``key`` of ``store`` and reports through a pipe."""
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: write, report, and leave without running any of the parent's cleanup
            status = 1
            try:
                os.close(read)
                # A fresh store: an S3 client's connections belong to the parent.
                child_store = open_store(store.location, s3=s3)
                result = child_store.write_part(key, encoded)
                report: dict[str, Any] = {
                    "size_bytes": result.size_bytes,
                    "sha256": result.sha256,
                    "seconds": result.seconds,
                }
                status = 0
            except BaseException as error:  # everything must reach the parent
                report = {"error": f"{type(error).__name__}: {error}"}
            finally:
                try:
                    os.write(write, json.dumps(report).encode())
                finally:
                    os._exit(status)
        os.close(write)
        return cls(pid, read, key)

    def result(self) -> WriteResult:
        """Waits for the child; raises :class:`CheckpointStorageError` with its error if the write failed."""
        chunks = []
        try:
            while chunk := os.read(self._pipe, 65536):
                chunks.append(chunk)
        finally:
            os.close(self._pipe)
        _, status = os.waitpid(self._pid, 0)
        try:
            report = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            report = {}
        if "sha256" not in report:
            reason = report.get("error") or f"the writer process ended with status {status}"
            raise CheckpointStorageError(f"writing the part {self._key} in a forked process failed: {reason}")
        return WriteResult(
            size_bytes=int(report["size_bytes"]),
            sha256=str(report["sha256"]),
            seconds=float(report["seconds"]),
        )

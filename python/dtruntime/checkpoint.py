"""``CheckpointManager``: saves and loads training state, standalone or as one rank of a distributed checkpoint.

>>> with CheckpointManager("./checkpoints", keep_last=3) as checkpoints:
...     checkpoints.save({"model": weights, "step": 1000}, step=1000, epoch=1)
...     state = checkpoints.load()  # the latest

**Standalone** (no coordinator) the manager is the commit point: it writes the part atomically, then a JSON manifest
with the part's size and sha256, atomically, last; a checkpoint exists once its manifest does. **Distributed** (given a
:class:`~dtruntime.worker.Worker`, or a coordinator and a worker id), it is one rank of a two-phase commit whose commit
point is the coordinator: ``SaveCheckpoint`` says where to write, the rank writes and reports size and sha256 (or the
failure), and the coordinator commits the manifest once every rank reported. The layout, the byte format and the
guarantees are in docs/CHECKPOINTS.md. The committers and the snapshotter are modules of their own
(``checkpoint_standalone``, ``checkpoint_distributed``, ``checkpoint_snapshot``); this one puts them together.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from dtruntime import validation
from dtruntime.checkpoint_distributed import DistributedCommitter
from dtruntime.checkpoint_format import EncodedState, decode, encode
from dtruntime.checkpoint_keys import CheckpointKey
from dtruntime.checkpoint_manifest import CheckpointManifest, CheckpointPart, StoreLocation
from dtruntime.checkpoint_retention import RetentionPolicy, expired_checkpoints
from dtruntime.checkpoint_save import PartWriter, SavedCheckpoint, SaveRequest
from dtruntime.checkpoint_snapshot import Snapshot, Snapshotter
from dtruntime.checkpoint_standalone import StandaloneCommitter
from dtruntime.checkpoint_store import BlobStore, S3Options, WriteResult, open_store, parse_store
from dtruntime.client import CheckpointTicket, CoordinatorClient
from dtruntime.errors import CheckpointNotFound

if TYPE_CHECKING:
    from dtruntime.worker import Worker

log = logging.getLogger("dtruntime")

DEFAULT_STORE = "./checkpoints"
DEFAULT_TASK = "local"

__all__ = [
    "DEFAULT_STORE",
    "DEFAULT_TASK",
    "CheckpointManager",
    "LoadedCheckpoint",
    "SavedCheckpoint",
    "expired_checkpoints",
]


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A loaded checkpoint: the state, its manifest, which part it came from, and whether the data ledgers were
    reset to its position (distributed loads with ``restore_data=True``)."""

    state: Any
    manifest: CheckpointManifest
    part: CheckpointPart
    data_restored: bool = False


class CheckpointManager:
    """Saves and loads checkpoints of training state.

    Args:
        store: standalone only: a directory (default ``./checkpoints``), ``file:///abs/dir`` or ``s3://bucket/prefix``.
            In distributed mode the coordinator says where parts go; passing a store then is an error.
        worker: a started :class:`~dtruntime.worker.Worker`: the manager saves as that worker's rank.
        coordinator, worker_id, membership_epoch: instead of ``worker``: a coordinator address or
            :class:`CoordinatorClient`, the id of a registered worker, and its current membership epoch (an int, or a
            function returning it), which fences saves.
        task_id: standalone: the name checkpoints are kept under in the store (default ``local``); distributed: the
            task to load from (default: the worker's).
        s3_endpoint, s3_region: standalone S3 stores: the endpoint URL (for S3-compatible servers) and signing region.
            Credentials always come from the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``).
        s3_options: multipart threshold, part size and concurrency of S3 transfers.
        max_in_flight: how many ``save(blocking=False)`` may run at once; a further one blocks until one finishes, so
            at most this many snapshots of the state exist in host memory.
        keep_last, keep_best, best_metric, best_mode: standalone retention: after each save keep the ``keep_last``
            last committed checkpoints plus the ``keep_best`` best by ``best_metric`` (``"min"``: lower is better, or
            ``"max"``), delete the rest. The latest is never deleted. ``None`` keeps everything. (Distributed
            retention is the coordinator's policy.)
        snapshot: how ``save(blocking=False)`` captures the state before it returns. ``"copy"`` copies it into host
            buffers (bounded by memory bandwidth: ~0.1 s per GiB). ``"fork"`` forks a child process that sees the
            state as it is at that instant, copy-on-write, and writes the part: a few milliseconds whatever the size;
            pages the training then changes are copied by the kernel one at a time. Forking needs the state in host
            memory (CPU tensors) and a POSIX system; the child never touches gRPC.
        allow_pickle: store values that are not arrays, tensors, containers or scalars with pickle (and load them).
            Pickles are only ever read from this manager's store (or the coordinator's), after their sha256 checks out.
    """

    def __init__(
        self,
        store: str | StoreLocation | None = None,
        *,
        worker: Worker | None = None,
        coordinator: str | CoordinatorClient | None = None,
        worker_id: str | None = None,
        membership_epoch: int | Callable[[], int] | None = None,
        task_id: str | None = None,
        s3_endpoint: str | None = None,
        s3_region: str | None = None,
        s3_options: S3Options | None = None,
        max_in_flight: int = 1,
        keep_last: int | None = None,
        keep_best: int = 0,
        best_metric: str | None = None,
        best_mode: Literal["min", "max"] = "min",
        allow_pickle: bool = True,
        snapshot: Literal["copy", "fork"] = "copy",
    ) -> None:
        if snapshot not in ("copy", "fork"):
            raise ValueError(f"snapshot must be 'copy' or 'fork' (got {snapshot!r})")
        if snapshot == "fork" and not hasattr(os, "fork"):
            raise ValueError("snapshot='fork' needs os.fork (Linux or macOS): use snapshot='copy'")
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be an integer >= 1 (got {max_in_flight!r})")
        s3 = s3_options or S3Options()
        self._allow_pickle = allow_pickle
        self._task_id = task_id or ""
        # Exactly one of the two committers: the manager itself commits standalone, the coordinator distributed.
        self._standalone: StandaloneCommitter | None = None
        self._distributed: DistributedCommitter | None = None
        self._owned_client: CoordinatorClient | None = None
        self._store: BlobStore | None = None
        """The standalone store."""

        if worker is not None or coordinator is not None:
            self._distributed = self._distributed_committer(
                store=store,
                worker=worker,
                coordinator=coordinator,
                worker_id=worker_id,
                membership_epoch=membership_epoch,
                s3=s3,
                location_given=bool(s3_endpoint or s3_region),
                retention_given=keep_last is not None or bool(keep_best) or bool(best_metric),
            )
        else:
            if worker_id is not None or membership_epoch is not None:
                raise ValueError("worker_id and membership_epoch need a coordinator (pass coordinator= or worker=)")
            self._task_id = task_id or DEFAULT_TASK
            validation.task_id(self._task_id)
            if isinstance(store, StoreLocation):
                location = store
            else:
                location = parse_store(
                    DEFAULT_STORE if store is None else store, s3_endpoint=s3_endpoint, s3_region=s3_region
                )
            retention = RetentionPolicy.checked(keep_last, keep_best, best_metric, best_mode)
            self._store = open_store(location, s3=s3)
            self._standalone = StandaloneCommitter(self._store, self._task_id, retention)

        self._lock = threading.Lock()  # the pending futures and the executor
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._max_in_flight = max_in_flight
        self._snapshotter = Snapshotter(snapshot, max_in_flight, s3)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[concurrent.futures.Future[SavedCheckpoint]] = []
        self._closed = False

    def _distributed_committer(
        self,
        *,
        store: object,
        worker: Worker | None,
        coordinator: str | CoordinatorClient | None,
        worker_id: str | None,
        membership_epoch: int | Callable[[], int] | None,
        s3: S3Options,
        location_given: bool,
        retention_given: bool,
    ) -> DistributedCommitter:
        if store is not None or location_given:
            raise ValueError(
                "in distributed mode the coordinator chooses the checkpoint store (its --checkpoint-store setting): "
                "drop store=, s3_endpoint= and s3_region= (S3 credentials still come from this process's environment)"
            )
        if retention_given:
            raise ValueError(
                "retention of distributed checkpoints is the coordinator's policy: drop keep_last/keep_best/best_metric"
            )
        if worker is not None:
            if coordinator is not None or worker_id is not None:
                raise ValueError("pass either worker= or coordinator= with worker_id=, not both")
            # The worker's own channel: saves and loads share its connection (and its reconnect behaviour).
            return DistributedCommitter(
                worker.client, worker.worker_id, worker=worker, membership_epoch=membership_epoch, s3=s3
            )
        if not worker_id:
            raise ValueError("coordinator= needs worker_id= (the id of a registered worker of the task)")
        if membership_epoch is None:
            raise ValueError(
                "coordinator= needs membership_epoch= (the worker's current membership epoch, or a function returning "
                "it: the coordinator refuses saves with a stale one); or pass worker= instead"
            )
        if isinstance(coordinator, CoordinatorClient):
            client = coordinator
        else:
            client = self._owned_client = CoordinatorClient(coordinator)
        return DistributedCommitter(client, worker_id, worker=None, membership_epoch=membership_epoch, s3=s3)

    # MARK: properties

    @property
    def distributed(self) -> bool:
        """True when saves go through the coordinator's two-phase commit."""
        return self._distributed is not None

    @property
    def location(self) -> StoreLocation | None:
        """The store (standalone), or the coordinator's store once a save or load has used it (distributed)."""
        if self._standalone is not None:
            return self._standalone.store.location
        return self._require_distributed().location

    @property
    def in_flight(self) -> int:
        """Background saves not finished yet."""
        with self._lock:
            return sum(not future.done() for future in self._pending)

    # MARK: saving

    @overload
    def save(
        self,
        state: Any,
        step: int,
        epoch: int = 0,
        *,
        metrics: Mapping[str, float] | None = None,
        metadata: Mapping[str, str] | None = None,
        blocking: Literal[True] = True,
    ) -> SavedCheckpoint: ...

    @overload
    def save(
        self,
        state: Any,
        step: int,
        epoch: int = 0,
        *,
        metrics: Mapping[str, float] | None = None,
        metadata: Mapping[str, str] | None = None,
        blocking: Literal[False],
    ) -> concurrent.futures.Future[SavedCheckpoint]: ...

    @overload
    def save(
        self,
        state: Any,
        step: int,
        epoch: int = 0,
        *,
        metrics: Mapping[str, float] | None = None,
        metadata: Mapping[str, str] | None = None,
        blocking: bool,
    ) -> SavedCheckpoint | concurrent.futures.Future[SavedCheckpoint]: ...

    def save(
        self,
        state: Any,
        step: int,
        epoch: int = 0,
        *,
        metrics: Mapping[str, float] | None = None,
        metadata: Mapping[str, str] | None = None,
        blocking: bool = True,
    ) -> SavedCheckpoint | concurrent.futures.Future[SavedCheckpoint]:
        """Saves ``state`` as the checkpoint of ``step``.

        ``state`` is a tree of dicts, lists and tuples whose leaves are numpy arrays, torch tensors, bytes, str, int,
        float, bool or None (other values are pickled, see ``allow_pickle``); arrays round-trip bit for bit.

        Blocking (the default), the part is written straight from the state's memory and the call returns once the
        checkpoint is committed (distributed: once every rank's part is). With ``blocking=False`` the state is first
        copied to host memory (the caller may change it as soon as this returns), written on a background thread, and
        a ``Future`` is returned; at most ``max_in_flight`` such saves run at once, a further one waits here.

        Raises ``ValueError`` for a bad step, epoch, metric or metadata, ``TypeError`` naming the path of a value that
        cannot be saved; write failures raise (or complete the future with) a :class:`CheckpointError`:
        :class:`CheckpointStorageError`, or :class:`CheckpointAborted` when the coordinator aborted the checkpoint.
        """
        self._check_open()
        distributed = self._distributed
        request = SaveRequest(
            step=validation.count("step", step),
            epoch=validation.count("epoch", epoch),
            metrics=validation.checkpoint_metrics(metrics),
            metadata=validation.checkpoint_metadata(metadata),
            membership_epoch=distributed.membership_epoch() if distributed is not None else 0,
            rank=distributed.worker_rank() if distributed is not None else None,
        )
        if blocking:
            encoded = encode(state, allow_pickle=self._allow_pickle)
            return self._commit(_writer(encoded), request, None, None)

        self._slots.acquire()
        try:
            encoded = encode(state, allow_pickle=self._allow_pickle)
            # Phase one here, not on the background thread: the coordinator records the data position when a rank
            # opens its checkpoint, and it must be the position of the state being captured now.
            ticket = distributed.begin(request) if distributed is not None else None
            try:
                snapshot, claimed = self._capture(encoded, request, ticket)
                try:
                    future = self._pool().submit(self._commit, snapshot.write, request, ticket, claimed)
                except BaseException:
                    self._snapshotter.release(snapshot)
                    raise
            except BaseException as error:
                if distributed is not None and ticket is not None:
                    distributed.report_failure(ticket, error)
                raise
        except BaseException:
            self._slots.release()
            raise

        def finished(_: concurrent.futures.Future[SavedCheckpoint]) -> None:
            self._snapshotter.release(snapshot)
            self._slots.release()

        future.add_done_callback(finished)
        with self._lock:
            self._pending.append(future)
        return future

    def _capture(
        self, encoded: EncodedState, request: SaveRequest, ticket: CheckpointTicket | None
    ) -> tuple[Snapshot, CheckpointKey | None]:
        """The state as of now, for a background save; with a fork, also the standalone checkpoint it writes to (the
        child writes at once, so the destination is decided here)."""
        if self._snapshotter.mode == "copy":
            return self._snapshotter.copy(encoded), None
        if ticket is not None:
            store = self._require_distributed().destination(ticket)
            return self._snapshotter.fork(encoded, store, ticket.object_key), None
        standalone = self._require_standalone()
        claimed = standalone.claim(request.step)
        return self._snapshotter.fork(encoded, standalone.store, claimed.part_key(0)), claimed

    def _commit(
        self, write: PartWriter, request: SaveRequest, ticket: CheckpointTicket | None, claimed: CheckpointKey | None
    ) -> SavedCheckpoint:
        """The rest of a save once it is known how the part gets written (here, or by a forked child)."""
        if self._distributed is not None:
            return self._distributed.commit(write, request, ticket or self._distributed.begin(request))
        return self._require_standalone().commit(write, request, claimed)

    # MARK: loading

    def load(self, step: int | None = None, *, restore_data: bool = False, rank: int | None = None) -> Any:
        """The state of the checkpoint of ``step`` (the latest when None), verified against its size and sha256.

        Distributed: this rank's part when the checkpoint has one, else rank 0's (a worker that joined since, or a job
        restarted with more workers, starts from rank 0's state). "This rank" is ``rank`` if given, else the worker's
        current rank (with ``coordinator=``/``worker_id=``: the rank of this manager's last save, else 0).
        ``restore_data`` also resets the task's data ledgers to the checkpoint's position (every rank may ask; the
        coordinator does it once).

        Raises :class:`CheckpointNotFound` when there is no such checkpoint, :class:`CheckpointCorrupted` when the
        part's bytes do not match its manifest.
        """
        return self.load_checkpoint(step, restore_data=restore_data, rank=rank).state

    def restore(self) -> LoadedCheckpoint | None:
        """Resume if there is a checkpoint, else start fresh: the latest checkpoint, or None on a job's first run.

        Distributed, it also rewinds the task's data ledgers to the checkpoint's position (``restore_data``), so model
        and data resume together. Call it on every rank when the job starts, before any rank reads data: the
        coordinator rewinds once per checkpoint and membership epoch, and :class:`~dtruntime.Worker` has waited for
        the task's members by then. A worker joining a job that is already training must not rewind it: it takes
        its state from the others (:meth:`DataParallel.resume <dtruntime.DataParallel.resume>` does both right).
        """
        try:
            return self.load_checkpoint(restore_data=self._distributed is not None)
        except CheckpointNotFound:
            return None

    def load_checkpoint(
        self, step: int | None = None, *, restore_data: bool = False, rank: int | None = None
    ) -> LoadedCheckpoint:
        """Like :meth:`load`, with the manifest and the part it came from."""
        self._check_open()
        if step is not None:
            step = validation.count("step", step)
        if self._standalone is not None:
            if restore_data:
                raise ValueError("restore_data needs a coordinator: standalone checkpoints record no data position")
            manifest = self._standalone.find(step)
            part = manifest.part_for(0 if rank is None else rank)
            store, data_restored = self._standalone.store, False
        else:
            committer = self._require_distributed()
            lookup = committer.lookup(step, task_id=self._task_id, restore_data=restore_data)
            manifest, data_restored = lookup.manifest, lookup.data_restored
            part = manifest.part_for(committer.rank() if rank is None else rank)
            store = committer.store_for(manifest.store)
        data = store.read_part(part)
        state = decode(data, allow_pickle=self._allow_pickle, source=store.url(part.object_key))
        return LoadedCheckpoint(state, manifest, part, data_restored)

    def checkpoints(self) -> list[CheckpointManifest]:
        """Committed checkpoints of this store and task, in commit order (the last is the latest). Standalone only:
        the coordinator lists distributed ones (``GET /api/checkpoints``)."""
        self._check_open()
        return self._require_standalone().committed()

    # MARK: draining and closing

    def wait(self, timeout: float | None = None) -> list[SavedCheckpoint]:
        """Waits for the background saves started so far; returns their results in order, or raises the first error
        among them (once all finished). Each save's outcome is reported by one ``wait`` only."""
        with self._lock:
            pending, self._pending = self._pending, []
        _, not_done = concurrent.futures.wait(pending, timeout)
        if not_done:
            with self._lock:
                self._pending[:0] = [future for future in pending if future in not_done]
            raise TimeoutError(f"{len(not_done)} checkpoint saves still in flight after {timeout}s")
        errors = [future.exception() for future in pending if future.exception() is not None]
        for extra in errors[1:]:
            log.error("another background checkpoint save failed too: %s", extra)
        if errors:
            raise errors[0]  # type: ignore[misc]
        return [future.result() for future in pending]

    def close(self) -> None:
        """Waits for background saves (raising the first error among them), then releases threads, buffers and
        connections. Idempotent."""
        if self._closed:
            return
        try:
            self.wait()
        finally:
            self._closed = True
            if self._executor is not None:
                self._executor.shutdown(wait=True)
            self._snapshotter.clear()
            if self._standalone is not None:
                self._standalone.close()
            if self._distributed is not None:
                self._distributed.close()
            if self._owned_client is not None:
                self._owned_client.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception as error:  # do not hide the exception that is already propagating
            log.error("a background checkpoint save failed while leaving the CheckpointManager: %s", error)

    # MARK: plumbing

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the CheckpointManager is closed")

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self._max_in_flight, thread_name_prefix="dtr-checkpoint"
                )
            return self._executor

    def _require_standalone(self) -> StandaloneCommitter:
        if self._standalone is None:
            raise ValueError("listing checkpoints is standalone only: the coordinator lists distributed ones")
        return self._standalone

    def _require_distributed(self) -> DistributedCommitter:
        assert self._distributed is not None, "a manager is standalone or distributed"
        return self._distributed


def _writer(encoded: EncodedState) -> PartWriter:
    """Writes the part straight from the state's memory (a blocking save)."""

    def write(store: BlobStore, key: str) -> WriteResult:
        return store.write_part(key, encoded)

    return write

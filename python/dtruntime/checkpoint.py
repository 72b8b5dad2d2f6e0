"""``CheckpointManager``: saves and loads training state, standalone or as one rank of a distributed checkpoint.

>>> with CheckpointManager("./checkpoints", keep_last=3) as checkpoints:
...     checkpoints.save({"model": weights, "step": 1000}, step=1000, epoch=1)
...     state = checkpoints.load()  # the latest

**Standalone** (no coordinator) the manager is the commit point: it writes the part atomically, then a JSON manifest
with the part's size and sha256, atomically, last; a checkpoint exists once its manifest does. **Distributed** (given a
:class:`~dtruntime.worker.Worker`, or a coordinator and a worker id), it is one rank of a two-phase commit whose commit
point is the coordinator: ``SaveCheckpoint`` says where to write, the rank writes and reports size and sha256 (or the
failure), and the coordinator commits the manifest once every rank reported. The layout, the byte format and the
guarantees are in docs/CHECKPOINTS.md.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from dtruntime import validation
from dtruntime.checkpoint_fork import ForkedWrite
from dtruntime.checkpoint_format import EncodedState, decode, encode
from dtruntime.checkpoint_manifest import (
    CheckpointManifest,
    CheckpointPart,
    CheckpointStatus,
    StoreLocation,
)
from dtruntime.checkpoint_store import (
    BlobStore,
    LocalStore,
    S3Options,
    WriteResult,
    open_store,
    parse_store,
)
from dtruntime.client import CheckpointReport, CheckpointTicket, CoordinatorClient, MembershipView
from dtruntime.errors import (
    CheckpointAborted,
    CheckpointCorrupted,
    CheckpointError,
    CheckpointNotFound,
    CheckpointStorageError,
    CoordinatorUnavailable,
    DeadlineExceeded,
    DtrError,
    FailedPrecondition,
    NotFound,
    StaleEpoch,
)

if TYPE_CHECKING:
    from dtruntime.worker import Worker

log = logging.getLogger("dtruntime")

DEFAULT_STORE = "./checkpoints"
DEFAULT_TASK = "local"
_MAX_FAILURE_CHARS = 1000
_REPORT_MARGIN = 30.0
"""Seconds a waiting part report may outlast the checkpoint's deadline (the coordinator answers at the deadline)."""
_DEFAULT_WAIT = 600.0
"""How long a waiting part report may take when the coordinator set no deadline."""
_STALE_RETRY_SECONDS = 30.0
"""How long a save waits for this worker's view to catch up with a membership change the coordinator already saw."""
_REPORT_RETRY_FIRST_PAUSE = 0.05
_REPORT_RETRY_MAX_PAUSE = 1.0
"""Pauses between retries of a part report while the coordinator is unreachable: doubling, at most this long (a
restarted coordinator is heard from within a second)."""


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


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A loaded checkpoint: the state, its manifest, which part it came from, and whether the data ledgers were
    reset to its position (distributed loads with ``restore_data=True``)."""

    state: Any
    manifest: CheckpointManifest
    part: CheckpointPart
    data_restored: bool = False


@dataclass(frozen=True)
class _Request:
    step: int
    epoch: int
    metrics: dict[str, float]
    metadata: dict[str, str]
    membership_epoch: int
    rank: int | None
    """The worker's rank when save() was called: the rank whose state this is."""


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
        self._snapshot = snapshot
        if not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be an integer >= 1 (got {max_in_flight!r})")
        self._distributed = worker is not None or coordinator is not None
        self._worker = worker
        self._client: CoordinatorClient | None = None
        self._owns_client = False
        self._worker_id = ""
        self._epoch_source = membership_epoch
        self._last_rank: int | None = None
        self._task_id = task_id or ""
        self._s3_options = s3_options or S3Options()
        self._allow_pickle = allow_pickle
        self._store: BlobStore | None = None
        self._stores: dict[StoreLocation, BlobStore] = {}

        if self._distributed:
            self._init_distributed(
                store=store,
                worker=worker,
                coordinator=coordinator,
                worker_id=worker_id,
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
            self._store = open_store(location, s3=self._s3_options)
        self._retention = _Retention.checked(keep_last, keep_best, best_metric, best_mode)

        self._lock = threading.Lock()  # the small shared state: caches, pending futures, executor, stores
        self._claim_lock = threading.Lock()  # one attempt number per save
        self._retention_lock = threading.Lock()  # one retention pass at a time
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._max_in_flight = max_in_flight
        self._staging = _StagingPool(max_in_flight)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[concurrent.futures.Future[SavedCheckpoint]] = []
        self._manifests: dict[str, CheckpointManifest] = {}
        self._last_commit: datetime.datetime | None = None
        self._closed = False

    def _init_distributed(
        self,
        *,
        store: object,
        worker: Worker | None,
        coordinator: str | CoordinatorClient | None,
        worker_id: str | None,
        location_given: bool,
        retention_given: bool,
    ) -> None:
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
            self._client = worker._client
            self._worker_id = worker.worker_id
            return
        if not worker_id:
            raise ValueError("coordinator= needs worker_id= (the id of a registered worker of the task)")
        if self._epoch_source is None:
            raise ValueError(
                "coordinator= needs membership_epoch= (the worker's current membership epoch, or a function returning "
                "it: the coordinator refuses saves with a stale one); or pass worker= instead"
            )
        if isinstance(coordinator, CoordinatorClient):
            self._client = coordinator
        else:
            self._client = CoordinatorClient(coordinator)
            self._owns_client = True
        self._worker_id = worker_id

    # MARK: properties

    @property
    def distributed(self) -> bool:
        """True when saves go through the coordinator's two-phase commit."""
        return self._distributed

    @property
    def location(self) -> StoreLocation | None:
        """The store (standalone), or the coordinator's store once a save or load has used it (distributed)."""
        if self._store is not None:
            return self._store.location
        return next(iter(self._stores), None)

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
        request = _Request(
            step=validation.count("step", step),
            epoch=validation.count("epoch", epoch),
            metrics=validation.checkpoint_metrics(metrics),
            metadata=validation.checkpoint_metadata(metadata),
            membership_epoch=self._membership_epoch() if self._distributed else 0,
            rank=self._worker.rank if self._worker is not None else None,
        )
        if blocking:
            return self._write(encode(state, allow_pickle=self._allow_pickle), request, None)

        self._slots.acquire()
        buffers: list[np.ndarray] = []
        try:
            encoded = encode(state, allow_pickle=self._allow_pickle)
            # Phase one here, not on the background thread: the coordinator records the data position when a rank
            # opens its checkpoint, and it must be the position of the state being captured now.
            ticket = self._begin(request) if self._distributed else None

            def allocate(size: int) -> np.ndarray:
                buffers.append(self._staging.take(size))
                return buffers[-1]

            try:
                if self._snapshot == "fork":
                    future = self._pool().submit(
                        self._write_part_with, self._fork(encoded, request, ticket), request, ticket
                    )
                else:
                    snapshot = encoded.snapshot(allocate)
                    future = self._pool().submit(self._write, snapshot, request, ticket)
            except BaseException as error:
                if ticket is not None:
                    self._report_failure(ticket, error)
                raise
        except BaseException:
            self._staging.give(*buffers)
            self._slots.release()
            raise

        def finished(_: concurrent.futures.Future[SavedCheckpoint]) -> None:
            self._staging.give(*buffers)
            self._slots.release()

        future.add_done_callback(finished)
        with self._lock:
            self._pending.append(future)
        return future

    def _write(self, encoded: EncodedState, request: _Request, ticket: CheckpointTicket | None) -> SavedCheckpoint:
        return self._write_part_with(lambda store, key: store.write_part(key, encoded), request, ticket)

    def _write_part_with(
        self, write: _PartWriter | _ForkedPart, request: _Request, ticket: CheckpointTicket | None
    ) -> SavedCheckpoint:
        """The rest of a save once it is known how the part gets written (here, or by a forked child)."""
        if isinstance(write, _ForkedPart):
            return write.finish(self)
        if self._distributed:
            return self._write_distributed(write, request, ticket or self._begin(request))
        return self._write_standalone(write, request)

    def _fork(self, encoded: EncodedState, request: _Request, ticket: CheckpointTicket | None) -> _ForkedPart:
        """Starts a forked write of the part, from the caller's thread (the child sees the state as of now)."""
        if ticket is not None:
            validation.object_key(ticket.object_key)
            store = self._store_for(ticket.store, create_root=False)
            return _ForkedPart(
                request, ticket, None, ForkedWrite.start(store, ticket.object_key, encoded, s3=self._s3_options)
            )
        store = self._require_store()
        prefix = self._claim(store, request.step)
        key = f"{prefix}/rank-00000.part"
        return _ForkedPart(request, None, prefix, ForkedWrite.start(store, key, encoded, s3=self._s3_options))

    def _write_standalone(self, write: _PartWriter, request: _Request, prefix: str | None = None) -> SavedCheckpoint:
        store = self._require_store()
        created = _now()
        prefix = prefix or self._claim(store, request.step)
        part_key = f"{prefix}/rank-00000.part"
        manifest_key = f"{prefix}/manifest.json"
        try:
            written = write(store, part_key)
            manifest = CheckpointManifest(
                checkpoint_id=prefix,
                task_id=self._task_id,
                step=request.step,
                epoch=request.epoch,
                world_size=1,
                parts=(CheckpointPart(0, part_key, written.size_bytes, written.sha256),),
                metrics=request.metrics,
                metadata=request.metadata,
                created_at=created,
                committed_at=self._commit_time(store),
                store=store.location,
                manifest_key=manifest_key,
            )
            # The commit point: the checkpoint is visible once its manifest exists, and the manifest is written whole.
            store.put(manifest_key, json.dumps(manifest.to_json(), indent=1, allow_nan=False).encode() + b"\n")
        except BaseException:
            try:
                store.delete_prefix(prefix)
            except CheckpointError as cleanup:
                log.warning("could not remove the unfinished checkpoint %s: %s", prefix, cleanup)
            raise
        with self._lock:
            self._manifests[prefix] = manifest
        self._apply_retention(store)
        return SavedCheckpoint(
            checkpoint_id=prefix,
            step=request.step,
            epoch=request.epoch,
            rank=0,
            world_size=1,
            status=CheckpointStatus.COMMITTED,
            path=store.url(part_key),
            object_key=part_key,
            size_bytes=written.size_bytes,
            sha256=written.sha256,
            write_seconds=written.seconds,
            manifest=manifest,
        )

    def _commit_time(self, store: BlobStore) -> datetime.datetime:
        """Now, but strictly after every commit this store has seen: commit order decides which checkpoint is the
        latest, and two saves within one millisecond must not tie."""
        with self._claim_lock:
            if self._last_commit is None:
                committed = self._committed(store)
                self._last_commit = committed[-1].committed_at if committed else _now()
            moment = max(_now(), self._last_commit + datetime.timedelta(milliseconds=1))
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # the manifest keeps milliseconds
            self._last_commit = moment
            return moment

    def _claim(self, store: BlobStore, step: int) -> str:
        """A fresh ``task/step-…-aN`` prefix for a save of ``step``: attempt numbers go up when a step is saved again
        (the last committed attempt of a step is the one loaded)."""
        with self._claim_lock:
            for attempt in range(1, 100_000):
                prefix = f"{self._task_id}/step-{step:012d}-a{attempt}"
                if store.claim(prefix):
                    return prefix
        raise CheckpointError(f"step {step} of task {self._task_id!r} was saved 100000 times: clean up the store")

    def _begin(self, request: _Request) -> CheckpointTicket:
        """Phase one, from the caller's thread: first the batches the worker handed out are committed (so the data
        position includes the batch the model was just trained on), then the checkpoint is opened."""
        commit_progress = getattr(self._worker, "commit_progress", None)
        if commit_progress is not None:
            commit_progress()
        ticket = self._open(self._require_client(), request)
        self._last_rank = ticket.rank
        return ticket

    def _write_distributed(self, write: _PartWriter, request: _Request, ticket: CheckpointTicket) -> SavedCheckpoint:
        client = self._require_client()
        try:
            validation.object_key(ticket.object_key)
            store = self._store_for(ticket.store, create_root=False)
            written = write(store, ticket.object_key)
        except BaseException as error:
            # Tell the coordinator at once, so the checkpoint aborts now rather than at its deadline.
            self._report_failure(ticket, error)
            raise
        report = self._report_part(client, ticket, request, written)
        if report.status == CheckpointStatus.ABORTED:
            raise CheckpointAborted(
                f"checkpoint {ticket.checkpoint_id} (step {request.step}) was aborted by the coordinator: "
                f"{report.abort_reason or 'no reason given'}; nothing of it is visible, save again"
            )
        if report.status != CheckpointStatus.COMMITTED:
            raise CheckpointError(
                f"checkpoint {ticket.checkpoint_id} (step {request.step}) is still {report.status.name} after its "
                f"deadline ({report.reported_parts} of {report.world_size} parts reported): is a rank stuck?"
            )
        return SavedCheckpoint(
            checkpoint_id=ticket.checkpoint_id,
            step=request.step,
            epoch=request.epoch,
            rank=ticket.rank,
            world_size=ticket.world_size,
            status=report.status,
            path=store.url(ticket.object_key),
            object_key=ticket.object_key,
            size_bytes=written.size_bytes,
            sha256=written.sha256,
            write_seconds=written.seconds,
            manifest=report.manifest,
        )

    def _report_part(
        self, client: CoordinatorClient, ticket: CheckpointTicket, request: _Request, written: WriteResult
    ) -> CheckpointReport:
        """Phase two: reports the written part and waits for the outcome. The coordinator takes the same report (same
        worker, checkpoint, size and sha256) again without effect, so when it is unreachable or the call times out (a
        restart, a network blip) the report is sent again, pausing up to a second between tries, until the
        checkpoint's deadline: a part already written is not given up for an outage the commit can outlive."""
        give_up = time.monotonic() + (
            _DEFAULT_WAIT if ticket.deadline is None else (ticket.deadline - _now()).total_seconds()
        )
        pause = _REPORT_RETRY_FIRST_PAUSE
        while True:
            try:
                return client.report_checkpoint_part(
                    self._worker_id,
                    ticket.checkpoint_id,
                    size_bytes=written.size_bytes,
                    sha256=written.sha256,
                    write_seconds=written.seconds,
                    wait=True,
                    timeout=_report_timeout(ticket),
                )
            except (CoordinatorUnavailable, DeadlineExceeded) as error:
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    raise
                log.warning(
                    "reporting the part of %s failed (%s); retrying in %.2fs, for up to %.0fs (its deadline)",
                    ticket.checkpoint_id,
                    error,
                    min(pause, remaining),
                    remaining,
                )
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, _REPORT_RETRY_MAX_PAUSE)
            except FailedPrecondition as error:
                # A report that arrives after the abort (a peer's failure came first, or the checkpoint was aborted
                # while the coordinator was out of reach) is refused; it is the same outcome as an ABORTED reply.
                if error.reason != "CHECKPOINT_ABORTED":
                    raise
                raise CheckpointAborted(
                    f"checkpoint {ticket.checkpoint_id} (step {request.step}) was aborted by the coordinator before "
                    f"this rank's report arrived: {error.message}",
                    error.code,
                ) from None

    def _open(self, client: CoordinatorClient, request: _Request) -> CheckpointTicket:
        """Phase one. When the coordinator refuses a stale membership epoch (a worker joined or left since the state
        was captured) and this worker's rank is still the same, the state is still this rank's: retry with the
        current epoch. When the rank changed, the state belongs to the old rank; the caller must decide."""
        membership_epoch = request.membership_epoch
        deadline = time.monotonic() + _STALE_RETRY_SECONDS
        while True:
            try:
                return client.save_checkpoint(
                    self._worker_id,
                    membership_epoch=membership_epoch,
                    step=request.step,
                    epoch=request.epoch,
                    metrics=request.metrics,
                    metadata=request.metadata,
                )
            except StaleEpoch as error:
                if self._worker is None:
                    raise
                try:
                    view = self._worker.wait_for(
                        _later_than(membership_epoch), timeout=max(0.0, deadline - time.monotonic())
                    )
                except (TimeoutError, DtrError):
                    raise error from None
                if view.rank != request.rank:
                    raise StaleEpoch(
                        f"{error.message} (this worker's rank changed from {request.rank} to {view.rank} since the "
                        "state was captured: save the new rank's state)",
                        error.code,
                        error.reason,
                        error.membership_epoch,
                    ) from None
                membership_epoch = view.membership_epoch

    def _report_failure(self, ticket: CheckpointTicket, error: BaseException) -> None:
        reason = (f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)[:_MAX_FAILURE_CHARS]
        try:
            self._require_client().report_checkpoint_part(self._worker_id, ticket.checkpoint_id, failure=reason)
        except DtrError as report_error:
            log.warning("could not report the failed part of %s: %s", ticket.checkpoint_id, report_error)

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
            return self.load_checkpoint(restore_data=self._distributed)
        except CheckpointNotFound:
            return None

    def load_checkpoint(
        self, step: int | None = None, *, restore_data: bool = False, rank: int | None = None
    ) -> LoadedCheckpoint:
        """Like :meth:`load`, with the manifest and the part it came from."""
        self._check_open()
        if step is not None:
            step = validation.count("step", step)
        if not self._distributed:
            if restore_data:
                raise ValueError("restore_data needs a coordinator: standalone checkpoints record no data position")
            store = self._require_store()
            manifest = self._find(store, step)
            part = manifest.part_for(0 if rank is None else rank)
            data_restored = False
        else:
            try:
                lookup = self._require_client().load_checkpoint(
                    self._worker_id, task_id=self._task_id, step=step, restore_data=restore_data
                )
            except NotFound as error:
                raise CheckpointNotFound(error.message, error.code) from None
            manifest, data_restored = lookup.manifest, lookup.data_restored
            part = manifest.part_for(self._rank() if rank is None else rank)
            store = self._store_for(manifest.store, create_root=False)
        data = store.read_part(part)
        state = decode(data, allow_pickle=self._allow_pickle, source=store.url(part.object_key))
        return LoadedCheckpoint(state, manifest, part, data_restored)

    def checkpoints(self) -> list[CheckpointManifest]:
        """Committed checkpoints of this store and task, in commit order (the last is the latest). Standalone only:
        the coordinator lists distributed ones (``GET /api/checkpoints``)."""
        self._check_open()
        return self._committed(self._require_store())

    def _committed(self, store: BlobStore) -> list[CheckpointManifest]:
        """Manifests of the committed checkpoints (those with a manifest), in commit order.

        "Latest" is the last committed, not the highest step: a job that rolled back to an earlier checkpoint saves
        the steps it reaches again as new attempts, and those are newer than the abandoned higher steps.
        """
        pattern = re.compile(rf"({re.escape(self._task_id)}/step-\d{{12,}}-a[1-9]\d*)/manifest\.json")
        ids = [match[1] for key in store.list_keys(self._task_id) if (match := pattern.fullmatch(key))]
        return sorted((self._manifest(store, checkpoint_id) for checkpoint_id in ids), key=_commit_order)

    def _manifest(self, store: BlobStore, checkpoint_id: str) -> CheckpointManifest:
        with self._lock:
            cached = self._manifests.get(checkpoint_id)
        if cached is not None:
            return cached
        key = f"{checkpoint_id}/manifest.json"
        raw = store.get(key)
        if raw is None:
            raise CheckpointNotFound(f"checkpoint {checkpoint_id} was deleted meanwhile ({store.url(key)})")
        try:
            manifest = CheckpointManifest.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise CheckpointCorrupted(f"the manifest {store.url(key)} is unreadable: {error!r}") from error
        if manifest.checkpoint_id != checkpoint_id or not manifest.parts:
            raise CheckpointCorrupted(f"the manifest {store.url(key)} does not describe checkpoint {checkpoint_id}")
        with self._lock:
            self._manifests[checkpoint_id] = manifest
        return manifest

    def _find(self, store: BlobStore, step: int | None) -> CheckpointManifest:
        committed = self._committed(store)
        matching = [manifest for manifest in committed if step is None or manifest.step == step]
        if not matching:
            where = f"{store.location.uri} (task {self._task_id!r})"
            if not committed:
                raise CheckpointNotFound(f"no checkpoint in {where} yet")
            steps = ", ".join(str(s) for s in sorted({manifest.step for manifest in committed}))
            raise CheckpointNotFound(f"no checkpoint of step {step} in {where}; saved steps: {steps}")
        return matching[-1]

    # MARK: retention

    def _apply_retention(self, store: BlobStore) -> None:
        if self._retention is None:
            return
        # One pass at a time: concurrent saves must not delete each other's choices.
        with self._retention_lock:
            for manifest in expired_checkpoints(self._committed(store), **self._retention.arguments()):
                log.info("checkpoint retention deletes %s", manifest.checkpoint_id)
                store.delete_prefix(manifest.checkpoint_id, first=manifest.manifest_key or None)
                with self._lock:
                    self._manifests.pop(manifest.checkpoint_id, None)

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
            self._staging.clear()
            for store in [*self._stores.values(), *([self._store] if self._store is not None else [])]:
                store.close()
            if self._owns_client and self._client is not None:
                self._client.close()

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

    def _require_store(self) -> BlobStore:
        if self._store is None:
            raise ValueError("listing checkpoints is standalone only: the coordinator lists distributed ones")
        return self._store

    def _require_client(self) -> CoordinatorClient:
        assert self._client is not None, "distributed mode always has a client"
        return self._client

    def _store_for(self, location: StoreLocation, *, create_root: bool) -> BlobStore:
        with self._lock:
            store = self._stores.get(location)
            if store is None:
                if not location.uri:
                    raise CheckpointError("the coordinator sent no checkpoint store location: is it configured?")
                store = open_store(location, s3=self._s3_options)
                if isinstance(store, LocalStore) and not create_root and not store.root.is_dir():
                    raise CheckpointStorageError(
                        f"the coordinator's checkpoint store {location.uri} is not a directory on this machine: a "
                        "local store must be a directory every worker and the coordinator share (e.g. NFS); use an "
                        "s3:// store otherwise"
                    )
                self._stores[location] = store
            return store

    def _membership_epoch(self) -> int:
        if self._worker is not None:
            return self._worker.membership_epoch
        source = self._epoch_source
        if callable(source):
            return int(source())
        return int(source or 0)

    def _rank(self) -> int | None:
        if self._worker is not None:
            return self._worker.rank
        return self._last_rank


# MARK: retention policy


@dataclass(frozen=True)
class _Retention:
    keep_last: int
    keep_best: int
    metric: str | None
    mode: Literal["min", "max"]

    @classmethod
    def checked(
        cls, keep_last: int | None, keep_best: int, metric: str | None, mode: Literal["min", "max"]
    ) -> _Retention | None:
        if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 1):
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

    def arguments(self) -> dict[str, Any]:
        return {"keep_last": self.keep_last, "keep_best": self.keep_best, "metric": self.metric, "mode": self.mode}


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
    checkpoint is always kept.

    The coordinator's ``RetentionPolicy`` rules; "last" is by commit order (``committed_at``, then step and attempt),
    which after a rollback is not the highest step.
    """
    newest_first = sorted(manifests, key=_commit_order, reverse=True)
    keep = {manifest.checkpoint_id for manifest in newest_first[: max(1, keep_last)]}
    if keep_best > 0 and metric:
        ranked = [m for m in newest_first if not math.isnan(m.metrics.get(metric, math.nan))]
        ranked.sort(key=lambda m: m.metrics[metric] if mode == "min" else -m.metrics[metric])  # stable: newer first
        keep.update(manifest.checkpoint_id for manifest in ranked[:keep_best])
    return [manifest for manifest in reversed(newest_first) if manifest.checkpoint_id not in keep]


def _commit_order(manifest: CheckpointManifest) -> tuple[datetime.datetime, int, int]:
    match = re.search(r"-a(\d+)$", manifest.checkpoint_id)
    return (manifest.committed_at, manifest.step, int(match[1]) if match else 0)


# MARK: staging buffers


class _StagingPool:
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


def _later_than(membership_epoch: int) -> Callable[[MembershipView], bool]:
    """Whether a view is of a membership epoch after ``membership_epoch``."""
    return lambda view: view.membership_epoch > membership_epoch


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.timezone.utc)


def _report_timeout(ticket: CheckpointTicket) -> float:
    if ticket.deadline is None:
        return _DEFAULT_WAIT
    return max(0.0, (ticket.deadline - _now()).total_seconds()) + _REPORT_MARGIN


_PartWriter = Callable[[BlobStore, str], WriteResult]
"""Writes the part to a key of a store."""


@dataclass(frozen=True)
class _ForkedPart:
    """A background save whose part a forked child is writing: the rest of the save waits for it."""

    request: _Request
    ticket: CheckpointTicket | None
    prefix: str | None
    child: ForkedWrite

    def finish(self, manager: CheckpointManager) -> SavedCheckpoint:
        # The child already writes; the writer just waits for its result.
        def written(_store: BlobStore, _key: str) -> WriteResult:
            return self.child.result()

        if self.ticket is not None:
            return manager._write_distributed(written, self.request, self.ticket)
        return manager._write_standalone(written, self.request, self.prefix)

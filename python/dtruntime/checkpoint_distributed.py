"""The distributed committer: one rank of the coordinator's two-phase commit, whose commit point is the coordinator.

Phase one (``SaveCheckpoint``) says where to write; the rank writes its part; phase two (``ReportCheckpointPart``)
reports its size and sha256 (or the failure), and the coordinator commits the manifest once every rank reported. The
guarantees are in docs/CHECKPOINTS.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dtruntime import validation
from dtruntime.checkpoint_manifest import CheckpointStatus, StoreLocation
from dtruntime.checkpoint_save import PartWriter, SavedCheckpoint, SaveRequest, utc_now
from dtruntime.checkpoint_store import BlobStore, LocalStore, S3Options, WriteResult, open_store
from dtruntime.client import CheckpointLookup, CheckpointReport, CheckpointTicket, CoordinatorClient, MembershipView
from dtruntime.errors import (
    CheckpointAborted,
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


class DistributedCommitter:
    """Saves and looks up checkpoints as one rank (``worker_id``) of a task, through the coordinator.

    ``worker`` (when given) supplies the membership epoch and rank, and commits its handed-out batches before a save;
    otherwise ``membership_epoch`` does (an int, or a function returning it).
    """

    def __init__(
        self,
        client: CoordinatorClient,
        worker_id: str,
        *,
        worker: Worker | None,
        membership_epoch: int | Callable[[], int] | None,
        s3: S3Options,
    ) -> None:
        self.client = client
        self.worker_id = worker_id
        self._worker = worker
        self._epoch_source = membership_epoch
        self._s3 = s3
        self._last_rank: int | None = None
        self._lock = threading.Lock()
        self._stores: dict[StoreLocation, BlobStore] = {}

    # MARK: phase one

    def membership_epoch(self) -> int:
        """The membership epoch a save made now is fenced with."""
        if self._worker is not None:
            return self._worker.membership_epoch
        source = self._epoch_source
        if callable(source):
            return int(source())
        return int(source or 0)

    def begin(self, request: SaveRequest) -> CheckpointTicket:
        """Phase one, from the caller's thread: first the batches the worker handed out are committed (so the data
        position includes the batch the model was just trained on), then the checkpoint is opened."""
        if self._worker is not None:
            self._worker.commit_progress()
        ticket = self._open(request)
        self._last_rank = ticket.rank
        return ticket

    def _open(self, request: SaveRequest) -> CheckpointTicket:
        """When the coordinator refuses a stale membership epoch (a worker joined or left since the state was
        captured) and this worker's rank is still the same, the state is still this rank's: retry with the current
        epoch. When the rank changed, the state belongs to the old rank; the caller must decide."""
        membership_epoch = request.membership_epoch
        deadline = time.monotonic() + _STALE_RETRY_SECONDS
        while True:
            try:
                return self.client.save_checkpoint(
                    self.worker_id,
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

    def destination(self, ticket: CheckpointTicket) -> BlobStore:
        """The store the ticket's part goes to (its key was checked)."""
        validation.object_key(ticket.object_key)
        return self.store_for(ticket.store)

    # MARK: the part and phase two

    def commit(self, write: PartWriter, request: SaveRequest, ticket: CheckpointTicket) -> SavedCheckpoint:
        """Writes this rank's part where the ticket says, reports it, and waits for the checkpoint's outcome."""
        try:
            store = self.destination(ticket)
            written = write(store, ticket.object_key)
        except BaseException as error:
            # Tell the coordinator at once, so the checkpoint aborts now rather than at its deadline.
            self.report_failure(ticket, error)
            raise
        report = self._report_part(ticket, request, written)
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

    def _report_part(self, ticket: CheckpointTicket, request: SaveRequest, written: WriteResult) -> CheckpointReport:
        """Phase two: reports the written part and waits for the outcome. The coordinator takes the same report (same
        worker, checkpoint, size and sha256) again without effect, so when it is unreachable or the call times out (a
        restart, a network blip) the report is sent again, pausing up to a second between tries, until the
        checkpoint's deadline: a part already written is not given up for an outage the commit can outlive."""
        give_up = time.monotonic() + (
            _DEFAULT_WAIT if ticket.deadline is None else (ticket.deadline - utc_now()).total_seconds()
        )
        pause = _REPORT_RETRY_FIRST_PAUSE
        while True:
            try:
                return self.client.report_checkpoint_part(
                    self.worker_id,
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

    def report_failure(self, ticket: CheckpointTicket, error: BaseException) -> None:
        """Tells the coordinator this rank's part failed (the checkpoint aborts at once); a report that cannot be sent
        is logged (the checkpoint then aborts at its deadline)."""
        reason = (f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)[:_MAX_FAILURE_CHARS]
        try:
            self.client.report_checkpoint_part(self.worker_id, ticket.checkpoint_id, failure=reason)
        except DtrError as report_error:
            log.warning("could not report the failed part of %s: %s", ticket.checkpoint_id, report_error)

    # MARK: loading

    def lookup(self, step: int | None, *, task_id: str, restore_data: bool) -> CheckpointLookup:
        """The committed checkpoint of ``step`` (the latest when None); ``CheckpointNotFound`` when there is none."""
        try:
            return self.client.load_checkpoint(self.worker_id, task_id=task_id, step=step, restore_data=restore_data)
        except NotFound as error:
            raise CheckpointNotFound(error.message, error.code) from None

    def worker_rank(self) -> int | None:
        """The worker's current rank; None without a worker (``coordinator=`` and ``worker_id=``)."""
        return self._worker.rank if self._worker is not None else None

    def rank(self) -> int | None:
        """This rank: the worker's current one, else that of the last save."""
        if self._worker is not None:
            return self._worker.rank
        return self._last_rank

    # MARK: stores

    def store_for(self, location: StoreLocation) -> BlobStore:
        """The coordinator's store at ``location``, opened once. A local store must already exist here: it is a
        directory the coordinator and every worker share."""
        with self._lock:
            store = self._stores.get(location)
            if store is None:
                if not location.uri:
                    raise CheckpointError("the coordinator sent no checkpoint store location: is it configured?")
                store = open_store(location, s3=self._s3)
                if isinstance(store, LocalStore) and not store.root.is_dir():
                    raise CheckpointStorageError(
                        f"the coordinator's checkpoint store {location.uri} is not a directory on this machine: a "
                        "local store must be a directory every worker and the coordinator share (e.g. NFS); use an "
                        "s3:// store otherwise"
                    )
                self._stores[location] = store
            return store

    @property
    def location(self) -> StoreLocation | None:
        """The coordinator's store, once a save or load used it."""
        with self._lock:
            return next(iter(self._stores), None)

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()


def _later_than(membership_epoch: int) -> Callable[[MembershipView], bool]:
    """Whether a view is of a membership epoch after ``membership_epoch``."""
    return lambda view: view.membership_epoch > membership_epoch


def _report_timeout(ticket: CheckpointTicket) -> float:
    if ticket.deadline is None:
        return _DEFAULT_WAIT
    return max(0.0, (ticket.deadline - utc_now()).total_seconds()) + _REPORT_MARGIN

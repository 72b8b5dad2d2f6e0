"""``Worker``: a training process's membership in a job, kept alive in the background."""

from __future__ import annotations

import collections
import functools
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TypeVar

import grpc
import numpy as np

from dtruntime import validation
from dtruntime.client import (
    BarrierResult,
    Command,
    CoordinatorClient,
    MembershipView,
    Registration,
    ShardLease,
    TaskSettings,
    heartbeat_request,
)
from dtruntime.errors import (
    CoordinatorUnavailable,
    DeadlineExceeded,
    DtrError,
    FailedPrecondition,
    NotAMember,
    NotFound,
    TaskFull,
)
from dtruntime.shuffle import sample_order
from dtruntime.v1 import coordinator_pb2 as pb

log = logging.getLogger("dtruntime")
T = TypeVar("T")


# Errors after which retrying cannot help: the worker stops heartbeating and reports the error.
_FATAL = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}


class Worker:
    """Joins a training job on construction-and-enter, heartbeats in the background, leaves on exit.

    >>> with Worker("localhost:50051", task_id="mnist") as worker:
    ...     print(worker.rank, worker.world_size)

    The background thread keeps one ``WorkerSession`` stream open (or sends unary heartbeats with
    ``use_stream=False``), so membership changes (a peer died, a peer joined, the task is stopping) arrive as soon as
    the coordinator knows them. When the coordinator restarts, the worker reconnects with backoff; when the
    coordinator no longer counts it as a member (it was declared dead), it registers again and gets a new rank.

    Before ``start()`` (``with``) returns, the worker waits until its task has the members it needs to start (the
    task's ``min_world_size``, from ``POST /api/tasks`` or from the launcher's ``--world-size``): every rank starts
    training together. A task that already has its ``max_world_size`` members admits this one when a member leaves or
    dies; until then the worker waits too.

    When the body of ``with Worker(...)`` raises, the worker leaves saying it failed (the task ends ``failed`` when its
    last worker fails); a clean exit leaves normally.

    Args:
        coordinator: gRPC address; defaults to ``$DTR_COORDINATOR``, then ``localhost:50051``.
        worker_id: unique id; defaults to ``$DTR_WORKER_ID`` (the ``dtrun`` launcher sets one that stays the same
            across a process's restarts), then ``<hostname>-<pid>``.
        task_id: the job to join; defaults to ``$DTR_TASK``; empty joins ``default``.
        world_size: the world size to create the task with, if this worker's registration creates it: ``N``,
            ``(MIN, MAX)`` or ``"MIN:MAX"``; defaults to ``$DTR_WORLD_SIZE`` (set by ``dtrun``). A task created
            through the HTTP API keeps its own.
        wait_for_world: wait in ``start()`` for the task's ``min_world_size`` members (default True).
        rendezvous_timeout: how long ``start()`` waits for the task's members (and for a place in a full task) before
            it raises ``TimeoutError``.
        host, port: where peers can reach this worker (default: this host's name and a free port).
        gpu_count, labels: what the worker brings, shown on the dashboard.
        use_stream: heartbeat over a session stream (default) or with unary calls.
        on_membership_change: called from the background thread with the new view whenever the rank, world size,
            membership epoch or command changes.
        register_timeout: how long to keep retrying the first registration while the coordinator is unreachable.
        token: the coordinator's ``--worker-token``, sent with every call; defaults to ``$DTR_WORKER_TOKEN``.
        ca_file: for a coordinator that serves TLS (``--tls-cert``): the PEM file of the CA that signed its
            certificate; defaults to ``$DTR_CA_FILE``. Without one the connection is plaintext.
        timeout: seconds each call to the coordinator may take (default 10; barriers have their own timeout).
    """

    def __init__(
        self,
        coordinator: str | None = None,
        worker_id: str | None = None,
        *,
        task_id: str | None = None,
        world_size: int | tuple[int, int] | str | None = None,
        wait_for_world: bool = True,
        rendezvous_timeout: float = 600.0,
        host: str | None = None,
        port: int | None = None,
        gpu_count: int = 0,
        labels: Mapping[str, str] | None = None,
        use_stream: bool = True,
        on_membership_change: Callable[[MembershipView], None] | None = None,
        register_timeout: float = 10.0,
        token: str | None = None,
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._client = CoordinatorClient(coordinator, timeout=timeout, token=token, ca_file=ca_file)
        self.worker_id = worker_id or os.environ.get("DTR_WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}"
        self._task_id = os.environ.get("DTR_TASK", "") if task_id is None else task_id
        self._world_size = parse_world_size(os.environ.get("DTR_WORLD_SIZE") if world_size is None else world_size)
        self._wait_for_world = wait_for_world
        self._rendezvous_timeout = rendezvous_timeout
        # Names this process: registering again from another process (a restart) replaces the old one at once
        # instead of waiting for the failure detector; re-registrations of this object keep it.
        self._incarnation = uuid.uuid4().hex
        self._host = host or socket.gethostname()
        self._port = port or _free_port()
        self._gpu_count = gpu_count
        self._labels = dict(labels or {})
        self._use_stream = use_stream
        self._on_change = on_membership_change
        self._register_timeout = register_timeout

        self._cond = threading.Condition()
        self._registration: Registration | None = None
        self._view: MembershipView | None = None
        self._stop_requested = False
        self._error: DtrError | None = None
        self._step = 0
        self._metrics: dict[str, float] = {}
        self._closing = threading.Event()
        # The batch each active epoch_batches iteration handed out and has not committed yet, by (dataset, epoch,
        # shard): commit_progress() commits them early.
        self._pending_commits: dict[tuple[str, int, int], _PendingCommit] = {}
        self._wake = threading.Event()
        self._call: grpc._CallIterator[pb.SessionEvent] | None = None
        self._thread: threading.Thread | None = None

    @property
    def client(self) -> CoordinatorClient:
        """The worker's connection to the coordinator (a distributed ``CheckpointManager`` saves and loads over it,
        sharing its reconnect behaviour)."""
        return self._client

    # MARK: lifecycle

    def start(self) -> Worker:
        """Registers (retrying while the coordinator is unreachable, and while the task is full), starts heartbeating,
        and waits until the task has the members it needs to start."""
        started = time.monotonic()
        delay = _Backoff()
        announced = False
        while True:
            try:
                self._register()
                break
            except CoordinatorUnavailable:
                if time.monotonic() + delay.peek() > started + self._register_timeout:
                    self._client.close()
                    raise
                time.sleep(delay.next())
            except TaskFull as error:
                if time.monotonic() + 1.0 > started + self._rendezvous_timeout:
                    self._client.close()
                    raise TimeoutError(f"{error} (waited {self._rendezvous_timeout:g} s)") from error
                if not announced:
                    log.info("worker %s waits for a place: %s", self.worker_id, error)
                    announced = True
                time.sleep(random.uniform(0.5, 1.0))
            except DtrError:
                self._client.close()
                raise
        self._thread = threading.Thread(target=self._run, name=f"dtr-heartbeat-{self.worker_id}", daemon=True)
        self._thread.start()
        if self._wait_for_world:
            try:
                self._rendezvous(started + self._rendezvous_timeout - time.monotonic())
            except BaseException:
                self.close()
                raise
        return self

    def _rendezvous(self, timeout: float) -> None:
        """Waits until the task has at least its ``min_world_size`` members."""
        needed = self.task.min_world_size
        if needed <= 1 or self.world_size >= needed:
            return
        log.info(
            "worker %s (rank %s) waits for the task %s to have %d workers (%d so far)",
            self.worker_id,
            self.rank,
            self.task_id,
            needed,
            self.world_size,
        )
        try:
            self.wait_for_world_size(needed, timeout=max(timeout, 0.0))
        except TimeoutError:
            raise TimeoutError(
                f"task {self.task_id} has {self.world_size} of the {needed} workers it needs to start after "
                f"{self._rendezvous_timeout:g} s: start the missing workers (dtrun --nproc, or one dtrun per node), or "
                "lower the task's world size (dtrun --world-size MIN:MAX, or min_world_size in POST /api/tasks)"
            ) from None

    def close(self, *, deregister: bool = True, failure: str | None = None) -> None:
        """Stops heartbeating and (by default) leaves the task so the coordinator releases the rank at once;
        ``failure`` says why the worker failed (it leaves as failed)."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._wake.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            # Bounded: every call the thread makes has a deadline, and it checks `_closing` between them.
            self._thread.join()
        if deregister and self._registration is not None:
            try:
                if failure is None:
                    self._client.deregister_worker(self.worker_id, "worker closed")
                else:
                    self._client.deregister_worker(self.worker_id, f"failed: {failure}"[:1024], failed=True)
            except DtrError as error:
                log.warning("could not deregister %s: %s", self.worker_id, error)
        self._client.close()

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Interrupted (Ctrl-C, or a launcher's SIGINT) or exiting with status 0 is not a failure.
        clean = exc is None or isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemExit) and not exc.code)
        self.close(failure=None if clean else f"{type(exc).__name__}: {exc}")

    # MARK: state

    @property
    def view(self) -> MembershipView:
        """The latest view the coordinator sent."""
        with self._cond:
            if self._view is None:
                raise RuntimeError("the worker is not started: use `with Worker(...)` or call start()")
            return self._view

    @property
    def rank(self) -> int | None:
        """Dense rank in the task, or None while the worker is not a member (e.g. between death and rejoin)."""
        return self.view.rank

    @property
    def world_size(self) -> int:
        return self.view.world_size

    @property
    def membership_epoch(self) -> int:
        """Bumps on every join, leave and death in the task."""
        return self.view.membership_epoch

    @property
    def task_id(self) -> str:
        return self.view.task_id

    @property
    def coordinator(self) -> str:
        """The coordinator's gRPC address this worker talks to (``host:port``)."""
        return self._client.address

    @property
    def stop_requested(self) -> bool:
        """True once the coordinator asked the task to stop: finish the step, save if needed, and exit."""
        with self._cond:
            return self._stop_requested

    @property
    def error(self) -> DtrError | None:
        """The error that made the background thread give up, if any (e.g. the coordinator rejected the worker)."""
        with self._cond:
            return self._error

    @property
    def heartbeat_interval(self) -> float:
        assert self._registration is not None
        return self._registration.heartbeat_interval

    @property
    def task(self) -> TaskSettings:
        """The settings of the task this worker joined (world size bounds, dataset, epochs, config), as of its latest
        registration."""
        with self._cond:
            if self._registration is None:
                raise RuntimeError("the worker is not started: use `with Worker(...)` or call start()")
            return self._registration.task

    def report(self, step: int | None = None, *, flush: bool = False, **metrics: float) -> None:
        """Records progress for the next heartbeat (shown on the dashboard); ``flush`` sends it now.

        Raises ``ValueError`` for what the coordinator would refuse (a negative step, more than 256 metrics, metric
        names that are not 1-128 printable ASCII characters without spaces), so a bad report fails here, in the
        training loop, instead of silencing the heartbeats.
        """
        if step is not None and (not isinstance(step, int) or step < 0):
            raise ValueError(f"step must be an integer >= 0 (got {step!r})")
        validation.metric_names(metrics, "report")
        values = {name: float(value) for name, value in metrics.items()}
        with self._cond:
            if step is not None:
                self._step = step
            if values:
                self._metrics = values
        if flush:
            self._wake.set()

    def wait_for(self, predicate: Callable[[MembershipView], bool], timeout: float | None = None) -> MembershipView:
        """Blocks until the view satisfies ``predicate``; raises ``TimeoutError`` after ``timeout`` seconds, or the
        background thread's error if it gave up (see :attr:`error`)."""
        with self._cond:
            met = self._cond.wait_for(
                lambda: self._error is not None or (self._view is not None and predicate(self._view)), timeout
            )
            if self._error is not None:
                raise self._error
            if not met:
                raise TimeoutError(f"membership condition not met within {timeout}s (current: {self._view})")
            assert self._view is not None
            return self._view

    def wait_for_world_size(self, size: int, timeout: float | None = None) -> MembershipView:
        """Blocks until the task has at least ``size`` members."""
        return self.wait_for(lambda view: view.world_size >= size, timeout)

    # MARK: data

    def epoch_batches(
        self,
        dataset: str,
        epoch: int,
        batch_size: int = 1,
        *,
        on_commit: Callable[[np.ndarray], None] | None = None,
        poll_interval: float = 0.2,
    ) -> Iterator[np.ndarray]:
        """This worker's sample indices of one epoch of ``dataset``, in order, as numpy arrays of ``batch_size``.

        Every sample of the epoch is committed exactly once across the task, while workers die, leave and join:

        - a batch is *committed* (reported to the coordinator) when the next one is requested, i.e. once the training
          step that used it is done; the last one when the iteration ends. A batch taken but not committed (the
          worker died, or the loop broke out) is served again, to this worker or another;
        - shards come in the epoch's order; a shard started earlier resumes after its committed samples;
        - when this worker has nothing left it steals unstarted shards from the most loaded worker, and picks up shards
          of workers that die; the iteration ends only when every shard of the epoch is done, so it doubles as an
          end-of-epoch barrier;
        - when the task is stopped (:attr:`stop_requested`), the iteration ends after committing the batch in hand,
          so the training loop ends cleanly.

        ``on_commit`` is called with each batch once its commit is acknowledged. A commit can be refused: when this
        worker lost the shard meanwhile (it was declared dead while paused, say), another worker commits the batch
        and ``on_commit`` is not called for it here. Keep exactly-once bookkeeping (sample logs, metrics) there.

        While the coordinator is unreachable (restarting) the iterator waits and retries. Ranks take different numbers
        of batches per epoch; :class:`~dtruntime.DataParallel` keeps them in step for synchronous training.
        """
        reader = self.epoch_reader(dataset, epoch, batch_size, on_commit=on_commit)
        idle = _Backoff(initial=poll_interval, maximum=max(poll_interval, 2.0))
        while not self.stop_requested:
            batch = reader.take()
            if batch is None:
                if reader.done:
                    return
                # Nothing for us yet: shards of a worker that dies, or unstarted ones to steal, may come.
                self._closing.wait(idle.next())
                continue
            idle.reset()
            try:
                yield batch
            except GeneratorExit:
                # Abandoned here (the loop broke out): the batch stays uncommitted and is served again.
                reader.drop()
                raise
            reader.commit()

    def epoch_reader(
        self,
        dataset: str,
        epoch: int,
        batch_size: int = 1,
        *,
        on_commit: Callable[[np.ndarray], None] | None = None,
    ) -> EpochReader:
        """A non-blocking reader of this worker's batches of one epoch: what :meth:`epoch_batches` iterates, for loops
        that must not wait when this worker has nothing to read (see :class:`EpochReader`)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        return EpochReader(self, dataset, epoch, batch_size, on_commit)

    def commit_progress(self) -> None:
        """Commits the batches :meth:`epoch_batches` handed out and has not committed yet, now rather than when the
        next batch is requested. A distributed :class:`~dtruntime.CheckpointManager` calls it before it saves, so the
        checkpoint's data position includes the batch the model was just trained on. Call it from the thread that
        iterates."""
        for flush in list(self._pending_commits.values()):
            flush()

    def _data_call(self, call: Callable[[], T]) -> T:
        """Runs a data-plane call, waiting out coordinator restarts and this worker's own re-registration."""
        delay = _Backoff(maximum=1.0)
        while True:
            try:
                return call()
            except (CoordinatorUnavailable, DeadlineExceeded) as error:
                if self._closing.is_set():
                    raise
                pause = delay.next()
                log.debug("worker %s: data call failed (%s); retrying in %.2fs", self.worker_id, error, pause)
                self._closing.wait(pause)
            except NotAMember as error:
                if self._closing.is_set():
                    raise
                # Declared dead and not re-registered yet: the heartbeat thread is on it (its next heartbeat is
                # answered REJOIN). Our view may not know yet, so wait a little either way.
                log.debug("worker %s: %s; waiting for the re-registration", self.worker_id, error)
                self._closing.wait(delay.next())
                self.wait_for(lambda view: view.rank is not None, timeout=30)

    # MARK: barriers

    def barrier(
        self, name: str, *, timeout: float | None = None, expected: int = 0, membership_epoch: int | None = None
    ) -> BarrierResult:
        """Waits until every member of the task (or ``expected`` of them) arrived at barrier ``name``.

        Names are reusable: each use is a new generation, so ``barrier("epoch-sync")`` can end every epoch. Raises
        :class:`~dtruntime.errors.BarrierAborted` if a participant dies or leaves first, and
        :class:`~dtruntime.errors.BarrierTimeout` after ``timeout`` seconds; both carry ``missing_ranks`` and
        ``missing_workers``. Nobody waits forever: the coordinator's default timeout is 300 s.

        ``membership_epoch`` fences the arrival (default: the current one): when the task's membership has changed
        since, the call fails with ``FailedPrecondition`` instead of meeting members the caller has not synchronised
        with.
        """
        epoch = self.membership_epoch if membership_epoch is None else membership_epoch
        return self._client.barrier_sync(
            name, self.worker_id, membership_epoch=epoch, expected=expected, timeout=timeout
        )

    def allreduce(
        self,
        values: np.ndarray,
        op: str = "mean",
        *,
        name: str = "allreduce",
        timeout: float | None = None,
        membership_epoch: int | None = None,
    ) -> np.ndarray:
        """Combines ``values`` (float32 or float64, any shape) across every member of the task: ``sum``, ``mean``,
        ``max`` or ``min``. Returns a new array of the same shape and type, identical on every member (sums are
        added in rank order). Every member must call it with the same op, type and length; a mismatch fails
        everyone with ``InvalidArgument``. ``membership_epoch`` fences the call as in :meth:`barrier`.
        """
        array = np.asarray(values)
        dtypes = {np.dtype(np.float32): pb.DTYPE_FLOAT32, np.dtype(np.float64): pb.DTYPE_FLOAT64}
        if array.dtype not in dtypes:
            raise TypeError(f"allreduce needs float32 or float64 values (got {array.dtype}): cast with .astype(...)")
        ops = {"sum": pb.REDUCE_OP_SUM, "mean": pb.REDUCE_OP_MEAN, "max": pb.REDUCE_OP_MAX, "min": pb.REDUCE_OP_MIN}
        if op not in ops:
            raise ValueError(f"op must be one of {', '.join(ops)} (got {op!r})")
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        payload = pb.ReducePayload(op=ops[op], dtype=dtypes[array.dtype], data=little.tobytes())
        epoch = self.membership_epoch if membership_epoch is None else membership_epoch
        reply = self._client.barrier_sync(
            name, self.worker_id, membership_epoch=epoch, timeout=timeout, payload=payload
        )
        result = np.frombuffer(reply.reduced, dtype=little.dtype).astype(array.dtype)
        return result.reshape(array.shape)

    # MARK: background thread

    def _register(self) -> None:
        registration = self._client.register_worker(
            self.worker_id,
            self._host,
            self._port,
            gpu_count=self._gpu_count,
            labels=self._labels,
            task_id=self._task_id,
            incarnation=self._incarnation,
            world_size=self._world_size,
        )
        with self._cond:
            self._registration = registration
        self._apply(registration.view, registered=True)

    def _run(self) -> None:
        # Retry at least once per heartbeat interval, so a restarted coordinator hears from us within its grace.
        delay = _Backoff(maximum=min(1.0, self.heartbeat_interval))
        while not self._closing.is_set():
            error = self._attempt(self._stream if self._use_stream else self._unary, delay)
            if error is None or self._closing.is_set():
                continue
            if isinstance(error, NotFound):
                error = self._attempt(lambda _: self._rejoin("the coordinator does not know this worker"), delay)
                if error is None:
                    continue
            if error.code in _FATAL:
                log.error("worker %s stops heartbeating: %s", self.worker_id, error)
                with self._cond:
                    self._error = error
                    self._cond.notify_all()
                return
            first_failure = not delay.failing
            pause = delay.next()
            # One warning per outage; the retries themselves are debug noise.
            log.log(
                logging.WARNING if first_failure else logging.DEBUG,
                "worker %s lost the coordinator (%s); retrying every %.2fs at most",
                self.worker_id,
                error,
                delay.maximum,
            )
            self._closing.wait(pause)

    def _attempt(self, action: Callable[[_Backoff], None], delay: _Backoff) -> DtrError | None:
        """Runs one connection attempt; returns the error that ended it, or None when it ended cleanly."""
        try:
            action(delay)
            return None
        except grpc.RpcError as error:
            return self._client.translate(error)
        except DtrError as error:
            return error
        except Exception as error:  # the thread must report and retry, not die silently
            log.exception("worker %s: unexpected error in the heartbeat thread", self.worker_id)
            return DtrError(f"unexpected error in the heartbeat thread: {error!r}")

    def _stream(self, delay: _Backoff) -> None:
        call = self._client.worker_session(self._heartbeats())
        self._call = call
        if self._closing.is_set():
            call.cancel()
        for event in call:
            self._connected(delay)
            self._apply(MembershipView.from_proto(event.view))

    def _unary(self, delay: _Backoff) -> None:
        while not self._closing.is_set():
            with self._cond:
                epoch = self._view.membership_epoch if self._view else 0
                step, metrics = self._step, self._metrics
            view = self._client.heartbeat(self.worker_id, membership_epoch=epoch, step=step, metrics=metrics)
            self._connected(delay)
            self._apply(view)
            self._wake.wait(self.heartbeat_interval)
            self._wake.clear()

    def _connected(self, delay: _Backoff) -> None:
        outage = delay.reset()
        if outage is not None:
            log.info("worker %s reached the coordinator again after %.1fs", self.worker_id, outage)

    def _heartbeats(self) -> Iterator[pb.SessionRequest]:
        """The session's upward stream: a heartbeat now, then one per interval (or when woken), until closed."""
        while not self._closing.is_set():
            yield pb.SessionRequest(heartbeat=self._heartbeat_request())
            self._wake.wait(self.heartbeat_interval)
            self._wake.clear()

    def _heartbeat_request(self) -> pb.HeartbeatRequest:
        with self._cond:
            epoch = self._view.membership_epoch if self._view else 0
            return heartbeat_request(self.worker_id, epoch, self._step, self._metrics)

    def _apply(self, view: MembershipView, *, registered: bool = False) -> None:
        """Takes a view from the coordinator. Views of one task only move forward: one older than the current epoch
        (a reply that crossed a push) is ignored, except a registration's, which starts over (the coordinator may
        have lost its state)."""
        with self._cond:
            previous = self._view
            if (
                not registered
                and previous is not None
                and previous.task_id == view.task_id
                and view.membership_epoch < previous.membership_epoch
            ):
                return
            self._view = view
            if view.command == Command.STOP:
                self._stop_requested = True
            self._cond.notify_all()
        if view.command == Command.REJOIN and not self._closing.is_set():
            self._rejoin(view.reason or "the coordinator no longer counts this worker as a member")
            return
        if previous is not None and _essence(previous) != _essence(view):
            log.info(
                "worker %s: rank %s of %s, membership epoch %s%s",
                self.worker_id,
                view.rank,
                view.world_size,
                view.membership_epoch,
                f" ({view.reason})" if view.reason else "",
            )
            if self._on_change is not None:
                try:
                    self._on_change(view)
                except Exception:
                    log.exception("worker %s: on_membership_change raised; heartbeats go on", self.worker_id)

    def _rejoin(self, why: str) -> None:
        if self._closing.is_set():
            return
        log.warning("worker %s registers again: %s", self.worker_id, why)
        self._register()


class EpochReader:
    """One worker's batches of one dataset epoch, taken without blocking (see :meth:`Worker.epoch_reader`); the same
    rules as :meth:`Worker.epoch_batches`.

    :meth:`take` returns the batch in hand, or the next one, or None when nothing is available to this worker right
    now (:attr:`done` says whether the whole epoch is); :meth:`commit` commits the batch in hand once its training
    step is done; a batch that is never committed is served again. Use it from one thread.

    A loader that prepares batches ahead of training (a ``torch.utils.data.DataLoader`` with workers) reads ahead with
    :meth:`take_next`: each call hands out a further batch, and :meth:`commit` commits the handed-out batches oldest
    first, one per call, as their steps finish. Use either :meth:`take` or :meth:`take_next` with one reader.
    """

    def __init__(
        self,
        worker: Worker,
        dataset: str,
        epoch: int,
        batch_size: int,
        on_commit: Callable[[np.ndarray], None] | None,
    ) -> None:
        self._worker = worker
        self.dataset = dataset
        self.epoch = epoch
        self.batch_size = batch_size
        self._on_commit = on_commit
        self._queue: list[ShardLease] = []
        self._assignment_epoch = 0
        self._shuffle = False
        # The shard batches are handed out from; shards to hand out again first (after drop()).
        self._shard: _OpenShard | None = None
        self._reopen: collections.deque[_OpenShard] = collections.deque()
        # Handed out and not committed yet, oldest first.
        self._handed: collections.deque[_Handed] = collections.deque()
        # Every shard this reader opened, by id.
        self._opened: dict[int, _OpenShard] = {}
        self._done = False

    @property
    def done(self) -> bool:
        """True once every shard of the epoch is done across the task: no batch will come any more."""
        return self._done

    @property
    def in_hand(self) -> np.ndarray | None:
        """The oldest batch handed out and not committed yet, if any."""
        return self._handed[0].pending.batch if self._handed else None

    @property
    def outstanding(self) -> int:
        """How many batches are handed out and not committed yet."""
        return len(self._handed)

    def take(self) -> np.ndarray | None:
        """The batch in hand if there is one, else the next batch of this worker (asking the coordinator for shards,
        stealing when this worker has none); None when there is nothing for this worker right now."""
        if self._handed:
            return self._handed[0].pending.batch
        handed = self._hand_out()
        if handed is None:
            return None
        self._worker._pending_commits[self._key(handed.shard)] = handed.pending
        return handed.pending.batch

    def take_next(self) -> np.ndarray | None:
        """Hands out the batch after those already handed out (reading ahead); None when there is nothing for this
        worker right now. Each one is committed, in order, by a later :meth:`commit`."""
        handed = self._hand_out()
        return None if handed is None else handed.pending.batch

    def commit(self) -> bool:
        """Commits the batch in hand (the oldest handed out, if any); False when its shard moved to another worker
        meanwhile (that worker commits the batch, and the later batches of that shard are refused too)."""
        if not self._handed:
            return True
        handed = self._handed.popleft()
        key = self._key(handed.shard)
        if self._worker._pending_commits.get(key) is handed.pending:
            del self._worker._pending_commits[key]
        if not handed.shard.lost and handed.pending():
            handed.shard.position = handed.target
            return True
        handed.shard.lost = True
        if self._shard is handed.shard:
            self._shard = None
        return False

    def drop(self) -> None:
        """Forgets the batches handed out without committing them: they are served again (here, or to another
        worker)."""
        shards: list[_OpenShard] = []
        for handed in self._handed:
            key = self._key(handed.shard)
            if self._worker._pending_commits.get(key) is handed.pending:
                del self._worker._pending_commits[key]
            if handed.shard not in shards:
                shards.append(handed.shard)
        self._handed.clear()
        if self._shard is not None and self._shard not in shards:
            shards.append(self._shard)
        self._shard = None
        for shard in reversed(shards):
            if not shard.lost:
                shard.handed = shard.position
                self._reopen.appendleft(shard)

    def _key(self, shard: _OpenShard) -> tuple[str, int, int]:
        return (self.dataset, self.epoch, int(shard.shard.shard_id))

    def _hand_out(self) -> _Handed | None:
        """The next batch after those handed out, from the current shard or the next one; None if there is none now."""
        while True:
            shard = self._shard
            if shard is None:
                shard = self._reopen.popleft() if self._reopen else self._open_next()
                if shard is None:
                    return None
                self._shard = shard
            if shard.lost or shard.handed >= len(shard.order):
                self._shard = None
                continue
            batch = shard.order[shard.handed : shard.handed + self.batch_size]
            shard.handed += len(batch)
            target = shard.handed
            pending = _PendingCommit(functools.partial(shard.commits, target), batch, self._on_commit)
            handed = _Handed(shard, target, pending)
            self._handed.append(handed)
            return handed

    def _open_next(self) -> _OpenShard | None:
        """Claims the next shard of this worker's assignment (asking for one when the last is used up)."""
        worker = self._worker
        while True:
            if not self._queue:
                reply = worker._data_call(
                    lambda: worker._client.get_shard_assignment(self.dataset, worker.worker_id, self.epoch)
                )
                # A shard stays listed until it is done: one this reader handed out entirely (reading ahead) is
                # committed as its steps finish, not opened again.
                fresh = [shard for shard in reply.shards if not self._is_open(shard)]
                if not fresh:
                    self._done = reply.complete
                    return None
                self._queue = fresh
                self._assignment_epoch = reply.membership_epoch
                self._shuffle = reply.shuffle
            assigned = self._queue.pop(0)
            if self._is_open(assigned):
                continue
            shard = _OpenShard(self, assigned, self._assignment_epoch)
            # Claim it (it no longer moves to joiners or thieves) and resume from the recorded cursor.
            position = shard.commit(int(shard.shard.consumed))
            if position is None:
                continue
            shard.position = shard.handed = position
            self._opened[int(assigned.shard_id)] = shard
            shard.order = sample_order(
                shard.shard.start, shard.shard.end, shard.shard.sample_seed, shuffle=self._shuffle
            )
            return shard

    def _is_open(self, shard: ShardLease) -> bool:
        known = self._opened.get(int(shard.shard_id))
        return known is not None and not known.lost


class _OpenShard:
    """A shard a reader is working through: its sample order, the committed cursor and the handed-out one.

    Reports carry the membership epoch of the assignment the shard came with: if the shard moved away since (even if
    it came back), the coordinator refuses them as stale instead of letting an old position overwrite a newer
    owner's.
    """

    def __init__(self, reader: EpochReader, shard: ShardLease, membership_epoch: int) -> None:
        self._reader = reader
        self.shard = shard
        self.membership_epoch = membership_epoch
        self.position = 0
        """Samples of the shard's order committed."""
        self.handed = 0
        """Samples of the shard's order handed out (committed or not)."""
        self.lost = False
        """True once a commit was refused: the shard moved to another worker."""
        self.order: np.ndarray = np.empty(0, dtype=np.int64)

    def commits(self, consumed: int) -> bool:
        """Commits a cursor; True when the coordinator accepted it (the shard is still ours)."""
        return self.commit(consumed) is not None

    def commit(self, consumed: int) -> int | None:
        """Commits a cursor; returns the coordinator's recorded one, or None if the shard is no longer ours."""
        reader, worker = self._reader, self._reader._worker
        try:
            reply = worker._data_call(
                lambda: worker._client.report_shard_progress(
                    reader.dataset,
                    worker.worker_id,
                    epoch=reader.epoch,
                    membership_epoch=self.membership_epoch,
                    shard_id=self.shard.shard_id,
                    consumed=consumed,
                )
            )
            return reply.consumed
        except FailedPrecondition as moved:
            log.info("worker %s: %s", worker.worker_id, moved)
            return None


class _Handed:
    """A batch an :class:`EpochReader` handed out: its shard, the shard cursor its commit reports, the commit."""

    __slots__ = ("pending", "shard", "target")

    def __init__(self, shard: _OpenShard, target: int, pending: _PendingCommit) -> None:
        self.shard = shard
        self.target = target
        self.pending = pending


def _essence(view: MembershipView) -> tuple[object, ...]:
    """What makes a view worth announcing: rank, world size, epoch, command."""
    return (view.rank, view.world_size, view.membership_epoch, view.command)


class _PendingCommit:
    """Commits one handed-out batch exactly once, whoever asks first: the iteration when the next batch is requested,
    or :meth:`Worker.commit_progress` before a checkpoint."""

    def __init__(
        self, commit: Callable[[], bool], batch: np.ndarray, on_commit: Callable[[np.ndarray], None] | None
    ) -> None:
        self._commit = commit
        self.batch = batch
        self._on_commit = on_commit
        self._result: bool | None = None

    def __call__(self) -> bool:
        """True when the commit was accepted (the shard is still ours)."""
        if self._result is None:
            self._result = self._commit()
            if self._result and self._on_commit is not None:
                self._on_commit(self.batch)
        return self._result


class _Backoff:
    """Exponential backoff with jitter, from ``initial`` doubling up to ``maximum`` seconds; times the outage."""

    def __init__(self, initial: float = 0.05, maximum: float = 1.0) -> None:
        self.maximum = maximum
        self._initial = min(initial, maximum)
        self._current = self._initial
        self._failing_since: float | None = None

    @property
    def failing(self) -> bool:
        return self._failing_since is not None

    def peek(self) -> float:
        return self._current

    def next(self) -> float:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        value = self._current * random.uniform(0.8, 1.2)
        self._current = min(self._current * 2, self.maximum)
        return value

    def reset(self) -> float | None:
        """Back to the initial delay; returns how long the failures lasted, or None if there were none."""
        self._current = self._initial
        since, self._failing_since = self._failing_since, None
        return None if since is None else time.monotonic() - since


def _free_port() -> int:
    """A TCP port nothing listens on right now (the default port a worker advertises to its peers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def parse_world_size(value: int | tuple[int, int] | str | None) -> tuple[int, int]:
    """``(min, max)`` from ``N``, ``(MIN, MAX)``, ``"N"`` or ``"MIN:MAX"`` (``(0, 0)`` for None or empty: not said)."""
    if value is None or value == "":
        return (0, 0)
    if isinstance(value, str):
        try:
            parts = [int(part) for part in value.split(":")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 2):
            raise ValueError(f"world size must be N or MIN:MAX, e.g. 4 or 2:4 (got {value!r})")
        value = (parts[0], parts[-1])
    least, most = (value, value) if isinstance(value, int) else value
    if not (1 <= least <= most <= 65536):
        raise ValueError(f"world size must be N or MIN:MAX with 1 <= MIN <= MAX <= 65536 (got {least}:{most})")
    return (least, most)

"""``DataParallel``: synchronous data-parallel training whose replicas stay identical while workers die, restart and
join, on the coordinator's barriers and shard ledger alone (no other process group).

Every rank holds a replica of the training state (parameters and optimizer buffers: numpy arrays it updates in place).
Each step, every rank takes a batch from its share of the epoch (:meth:`Worker.epoch_reader`: exactly once per epoch
across the job), computes gradients, and :meth:`DataParallel.update` averages them across the ranks, weighted by each
rank's number of samples, and applies the average on every rank. Ranks step together: a rank that has no batch at a
step (its shards are done while others still read) takes part with an empty batch and weight 0, so nobody waits for
it and every replica applies the same update.

When the membership changes (a worker dies, a restarted process joins, the coordinator restarts), a collective fails on
every rank; the ranks then *re-synchronise*: they agree on the most advanced replica (highest epoch and step), copy its
state to everyone, and redo the interrupted step from the start. A rank whose batch was not applied does not commit it,
so it is read again: every sample is committed once per epoch whatever happens.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dtruntime.errors import (
    Aborted,
    BarrierError,
    CoordinatorUnavailable,
    DeadlineExceeded,
    DtrError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)

if TYPE_CHECKING:
    from dtruntime.checkpoint import CheckpointManager, LoadedCheckpoint
    from dtruntime.client import MembershipView
    from dtruntime.worker import Worker

log = logging.getLogger("dtruntime")

# What makes the ranks re-synchronise: the membership changed under a collective (aborted, stale epoch, not a member),
# the coordinator went away or restarted, a collective timed out, or ranks at different steps met (a release lost in
# a coordinator crash): every case in which the ranks may no longer be at the same step with the same state.
_DISTURBANCES = (BarrierError, Aborted, FailedPrecondition, NotFound, CoordinatorUnavailable, DeadlineExceeded)

# Steps are tagged modulo this in every collective, so that ranks at different steps never combine silently; the
# tags' sum of squares stays exact in float64 for up to 65,536 ranks.
_TAG_MODULUS = 1 << 16
# A reduce mismatch (INVALID_ARGUMENT) happens once when ranks in different phases meet after a crash; more in a row
# at the same step is a real mismatch (ranks passing different shapes) and is raised.
_MAX_MISMATCHES = 3


class StepMismatch(DtrError):
    """Ranks met at a collective while at different steps (detected from the steps' tags)."""


@dataclass(frozen=True)
class _Totals:
    """A vote's sums over the ranks: how many took part, how many have a batch, are done with the epoch, or stop."""

    ranks: int
    with_batch: int
    done: int
    stopping: int


class DataParallel:
    """Keeps a data-parallel job's replicas identical and in step (see the module docstring).

    >>> dp = DataParallel(worker, model.params)           # dict of numpy arrays, updated in place
    >>> dp.resume(checkpoints)                            # peers' state, else the latest checkpoint, else as given
    >>> for epoch in dp.epochs(20):
    ...     for batch in dp.batches("digits", batch_size=32):
    ...         grads = model.gradients(X[batch], y[batch])     # zeros for an empty batch
    ...         dp.update(grads, weight=len(batch), apply=model.sgd)
    ...     checkpoints.save(dp.state_dict(), step=dp.global_step, epoch=dp.epoch, blocking=False)

    Args:
        worker: the started :class:`~dtruntime.Worker` of this process.
        state: the replica's arrays (float32 or float64, any shapes), which the training code updates in place; every
            rank passes the same names, shapes and types.
        name: the barrier name the collectives use (one per DataParallel of a task).
        timeout: seconds a collective waits for the other ranks before the ranks re-synchronise.
        rendezvous_timeout: seconds a re-synchronisation may take (waiting for the coordinator to come back, or for the
            task's ``min_world_size`` members) before it raises ``TimeoutError``.
        poll_interval: how often ranks ask again when none of them has a batch but the epoch is not done.
    """

    def __init__(
        self,
        worker: Worker,
        state: Mapping[str, np.ndarray],
        *,
        name: str = "data-parallel",
        timeout: float = 60.0,
        rendezvous_timeout: float = 600.0,
        poll_interval: float = 0.05,
    ) -> None:
        for key, array in state.items():
            if not isinstance(array, np.ndarray) or array.dtype not in (np.float32, np.float64):
                raise TypeError(f"state[{key!r}] must be a float32 or float64 numpy array (got {type(array).__name__})")
        self._worker = worker
        self._state = dict(state)
        self._name = name
        self._timeout = timeout
        self._rendezvous_timeout = rendezvous_timeout
        self._poll_interval = poll_interval
        self.epoch = 0
        """The epoch being trained (the next one once an epoch's batches are done)."""
        self.global_step = 0
        """Updates applied by the job so far (the same on every rank)."""
        self.stopped = False
        """True once the task was stopped: ``epochs()`` and ``batches()`` end on every rank at the same step."""
        self.resyncs = 0
        """How many times this rank re-synchronised with the others (membership changes, coordinator restarts)."""
        self.joined_running_job = False
        """True when :meth:`resume` took the state of a job that was already training (a restarted or added worker)."""
        self._has_state = False
        self._synced_epoch: int | None = None
        self._update_due = False
        self._update_applied = False
        self._mismatches = 0

    # MARK: state

    @property
    def membership_epoch(self) -> int | None:
        """The task's membership epoch the replicas last synchronised at (None before the first)."""
        return self._synced_epoch

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to resume: the replica's arrays, the epoch and the global step."""
        return {
            "state": {key: array.copy() for key, array in self._state.items()},
            "epoch": self.epoch,
            "global_step": self.global_step,
        }

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Copies a :meth:`state_dict` into the replica (in place)."""
        arrays = saved["state"]
        if set(arrays) != set(self._state):
            raise ValueError(f"the saved state has {sorted(arrays)}, this replica {sorted(self._state)}")
        for key, array in self._state.items():
            array[...] = np.asarray(arrays[key], dtype=array.dtype).reshape(array.shape)
        self.epoch = int(saved["epoch"])
        self.global_step = int(saved["global_step"])

    # MARK: joining

    def resume(self, checkpoints: CheckpointManager | None = None) -> LoadedCheckpoint | None:
        """Brings this replica to the job's state; every rank calls it once before training.

        A job that is already training (this process restarted, or joined later) hands its state over from the most
        advanced replica. Otherwise (the job starts) every rank loads the latest checkpoint of ``checkpoints`` when
        there is one (also rewinding the task's data ledgers to its position, once), or keeps the state it was given;
        the ranks then synchronise from the lowest rank, so all replicas start identical.

        Returns the loaded checkpoint, or None (no checkpoint yet, or the state came from the other ranks).
        """
        if self._synchronise():
            self.joined_running_job = True
            log.info(
                "worker %s took the job's state: epoch %d, step %d",
                self._worker.worker_id,
                self.epoch,
                self.global_step,
            )
            return None
        loaded = checkpoints.restore() if checkpoints is not None else None
        if loaded is not None:
            self.load_state_dict(loaded.state)
        self._has_state = True
        self._synchronise()
        return loaded

    # MARK: training loop

    def epochs(self, total: int) -> Iterator[int]:
        """The epochs left to train, from :attr:`epoch` up to ``total`` (exclusive); ends early when the task stops.
        Iterate :meth:`batches` to its end in each."""
        self._require_state()
        while self.epoch < total and not self.stopped:
            epoch = self.epoch
            yield epoch
            if self.epoch == epoch and not self.stopped:
                raise RuntimeError(
                    f"epoch {epoch} did not finish: iterate dp.batches(...) to its end in every epoch, on every rank"
                )

    def batches(
        self,
        dataset: str,
        batch_size: int,
        *,
        on_commit: Callable[[np.ndarray], None] | None = None,
    ) -> Iterator[np.ndarray]:
        """The current epoch's batches of ``dataset`` for this rank, in step with the other ranks.

        Every rank gets one batch per step (an empty int64 array when it has nothing to read at that step) and must
        call :meth:`update` once for it. A batch is committed once its update is applied; ``on_commit`` is called
        with it then. The iteration ends on every rank at the same step: when the epoch is done (the epoch then
        advances), or when the task is stopped.
        """
        self._require_state()
        epoch = self.epoch
        reader = self._worker.epoch_reader(dataset, epoch, batch_size, on_commit=on_commit)
        idle = 0
        while not self.stopped:
            if self.epoch != epoch:  # a re-synchronisation moved the job to a later epoch: this one is done
                reader.drop()
                return
            batch = None if reader.done else reader.take()
            try:
                totals = self._vote(batch is not None, reader.done)
            except (*_DISTURBANCES, StepMismatch, InvalidArgument) as error:
                self._recover(error)
                continue
            if totals.stopping:
                reader.drop()
                self.stopped = True
                return
            if not totals.with_batch:
                if totals.done == totals.ranks:
                    self.epoch = epoch + 1
                    return
                idle += 1
                time.sleep(min(self._poll_interval * idle, 0.5))
                continue
            idle = 0
            step = self.global_step
            self._update_due, self._update_applied = True, False
            yield batch if batch is not None else np.empty(0, dtype=np.int64)
            if self._update_due:
                self._update_due = False
                raise RuntimeError("call dp.update(...) once for every batch dp.batches(...) yields, on every rank")
            # Applied here, or included in the state a re-synchronisation adopted: committed. Otherwise redone.
            if batch is not None and (self._update_applied or self.global_step > step):
                reader.commit()

    def update(
        self,
        gradients: Mapping[str, np.ndarray | float],
        *,
        weight: float,
        apply: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any] | None:
        """Averages ``gradients`` across the ranks, weighted by ``weight`` (this rank's number of samples: 0 for an
        empty batch), and calls ``apply`` with the average on every rank; returns the average.

        ``gradients`` maps names to arrays or floats (a loss to average too, say); the average has the same names,
        shapes and types. Returns None, without calling ``apply``, when a membership change interrupted the step:
        the replicas were re-synchronised and :meth:`batches` redoes the step.
        """
        if not self._update_due:
            raise RuntimeError("dp.update(...) is called once per batch of dp.batches(...), inside its loop")
        self._update_due = False
        if weight < 0 or not math.isfinite(weight):
            raise ValueError(f"weight must be a finite number >= 0 (got {weight})")
        layout = [(key, np.shape(value), np.asarray(value).dtype) for key, value in gradients.items()]
        parts = [np.asarray(value, dtype=np.float64).ravel() for value in gradients.values()]
        flat = np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
        tag = self._tag(phase=1)
        payload = np.concatenate(([1.0, tag, tag * tag, float(weight)], flat * weight))
        try:
            totals = self._collective("sum", payload)
            self._check_tags(totals, tag)
        except (*_DISTURBANCES, StepMismatch, InvalidArgument) as error:
            self._recover(error)
            return None
        self._mismatches = 0
        total_weight = totals[3]
        mean = totals[4:] / total_weight if total_weight > 0 else np.zeros_like(flat)
        average: dict[str, Any] = {}
        offset = 0
        for key, shape, dtype in layout:
            size = math.prod(shape)
            value = mean[offset : offset + size]
            average[key] = value.reshape(shape).astype(dtype) if shape else float(value[0])
            offset += size
        apply(average)
        self.global_step += 1
        self._update_applied = True
        return average

    # MARK: collectives

    def _tag(self, phase: int) -> float:
        return float((2 * self.global_step + phase) % _TAG_MODULUS)

    def _collective(self, op: str, payload: np.ndarray) -> np.ndarray:
        return self._worker.allreduce(
            payload, op=op, name=self._name, timeout=self._timeout, membership_epoch=self._synced_epoch
        )

    def _check_tags(self, totals: np.ndarray, tag: float) -> None:
        """Raises StepMismatch unless every rank of the collective was at this rank's step and phase (``tag``): the
        tags' sum and sum of squares are those of ``ranks`` equal tags only if they all are."""
        ranks, tags, squares = totals[0], totals[1], totals[2]
        if not (ranks >= 1 and tags == ranks * tag and squares == ranks * tag * tag):
            raise StepMismatch(f"ranks at different steps met at step {self.global_step}: re-synchronising")

    def _vote(self, has_batch: bool, done: bool) -> _Totals:
        tag = self._tag(phase=0)
        totals = self._collective("sum", np.array([1.0, tag, tag * tag, has_batch, done, self._worker.stop_requested]))
        self._check_tags(totals, tag)
        self._mismatches = 0
        return _Totals(int(totals[0]), int(totals[3]), int(totals[4]), int(totals[5]))

    # MARK: re-synchronisation

    def _recover(self, error: BaseException) -> None:
        """After a failed collective: re-synchronise with the other ranks (raising a real reduce mismatch)."""
        if isinstance(error, InvalidArgument):
            self._mismatches += 1
            if self._mismatches >= _MAX_MISMATCHES:
                raise error
        log.info("worker %s re-synchronises at step %d: %s", self._worker.worker_id, self.global_step, error)
        self.resyncs += 1
        self._synchronise()

    def _synchronise(self) -> bool:
        """Makes every replica equal to the most advanced one (highest epoch, then step; the lowest rank among
        equals): three collectives at one membership epoch, started again if the membership changes meanwhile.
        Returns False, changing nothing, when no rank has a state yet (the job is starting)."""
        deadline = time.monotonic() + self._rendezvous_timeout
        pause = 0.05
        while True:
            view = self._member_view(deadline)
            self._synced_epoch = view.membership_epoch
            try:
                return self._synchronise_at(view)
            except (*_DISTURBANCES, InvalidArgument) as error:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"the ranks could not re-synchronise within {self._rendezvous_timeout:g} s: {error}"
                    ) from error
                log.debug("worker %s: synchronisation interrupted (%s); again", self._worker.worker_id, error)
                time.sleep(pause * random.uniform(0.5, 1.0))
                pause = min(pause * 2, 1.0)

    def _synchronise_at(self, view: MembershipView) -> bool:
        assert view.rank is not None
        key = self._key()
        best = self._collective("max", np.array([key]))[0]
        if best < 2.0**52:  # nobody has a state: the job starts
            return False
        mine = float(view.rank) if self._has_state and key == best else math.inf
        source = self._collective("min", np.array([mine]))[0]
        size = sum(array.size for array in self._state.values())
        payload = np.zeros(size + 2)
        if view.rank == source:
            payload[:size] = np.concatenate([array.astype(np.float64).ravel() for array in self._state.values()])
            payload[size:] = (self.epoch, self.global_step)
        merged = self._collective("sum", payload)
        offset = 0
        for array in self._state.values():
            array[...] = merged[offset : offset + array.size].reshape(array.shape).astype(array.dtype)
            offset += array.size
        self.epoch, self.global_step = int(merged[size]), int(merged[size + 1])
        self._has_state = True
        self._mismatches = 0
        return True

    def _key(self) -> float:
        """This replica's standing, exactly in a float64: whether it has a state, then its epoch, then its step."""
        if self.epoch >= 1 << 20 or self.global_step >= 1 << 32:
            raise OverflowError("DataParallel supports up to 2^20 epochs and 2^32 steps")
        return float((int(self._has_state) << 52) | (self.epoch << 32) | self.global_step)

    def _member_view(self, deadline: float) -> MembershipView:
        """Waits until this worker is a member of a task with at least its ``min_world_size`` members."""
        needed = max(1, self._worker.task.min_world_size)
        try:
            return self._worker.wait_for(
                lambda view: view.rank is not None and view.world_size >= needed,
                timeout=max(0.0, deadline - time.monotonic()),
            )
        except TimeoutError:
            raise TimeoutError(
                f"task {self._worker.task_id} has fewer than the {needed} workers it needs to go on after "
                f"{self._rendezvous_timeout:g} s: restart the missing workers, or lower the task's min_world_size"
            ) from None

    def _require_state(self) -> None:
        if not self._has_state:
            raise RuntimeError("call dp.resume(...) once before training, on every rank")

"""``ElasticTrainer``: DistributedDataParallel that re-forms its process group when workers die, restart or join,
without restarting the processes that are still alive.

Every rank holds a replica of the model and the optimizer. Each step starts with a *vote*, one small allreduce over
the process group: who has a batch (and how many samples), who has finished the epoch, who was told to stop, and who
has seen the coordinator's membership epoch move. Every rank takes part in every step: a rank with nothing to read
trains on a stand-in sample whose gradients get weight 0 (a DDP communication hook averages the gradients weighted by
each rank's number of samples, so the update is the mean gradient over the step's global batch). Ranks therefore run
the same collectives in the same order, and none waits in an allreduce for a rank that will never come.

When the membership changes (a worker died, a restarted process came back, a worker joined), every rank learns it in
the same vote, or a collective fails (a peer died in the middle of it: see :mod:`dtruntime.torch.group` for how one
rank's error reaches every rank). Each rank then *re-forms*: it destroys the process group, meets the others at the
coordinator at the new membership epoch (:mod:`dtruntime.torch.rendezvous`; the coordinator's barrier, fenced by the
membership epoch, is the agreement point), forms a new process group, takes the state of the most advanced replica
(highest epoch, then step; the lowest rank among equals) by one broadcast, rebuilds DDP, and goes on. The
interrupted step is redone from its vote, unless the adopted state already includes it.
"""

from __future__ import annotations

import concurrent.futures
import copy
import io
import logging
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from dtruntime.torch.group import Group, form
from dtruntime.torch.rendezvous import RendezvousStopped, meet
from dtruntime.torch.sampler import LedgerBatchSampler

if TYPE_CHECKING:
    from dtruntime.checkpoint import CheckpointManager, LoadedCheckpoint, SavedCheckpoint
    from dtruntime.worker import Worker

log = logging.getLogger("dtruntime")

# A standing is exact in a float64: whether the replica has a state, then its epoch, then its step.
_HAS_STATE = 1 << 52
# Words in the messages of the errors a failed collective raises (gloo, NCCL, our own abort, timeouts).
_COMMUNICATION_MARKERS = ("gloo", "nccl", "connection", "timed out", "timeout", "broken pipe", "socket", "peer")
# Idle votes (nobody has a batch, the epoch is not done) that go round at once before the ranks start to wait
# between votes: a loader's pipeline of stand-ins drains in that many.
_FREE_IDLE_VOTES = 8


class Stateful(Protocol):
    """What can be part of the trainer's state besides the model and the optimizer: an LR scheduler, a GradScaler..."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Formation:
    """One formation of the process group: the first one, and each re-forming."""

    reason: str
    """Why: ``start``, ``membership changed``, or the failure that interrupted a collective."""
    started: float
    """When this rank began (``time.time()``): when it saw the change or the failure."""
    finished: float
    """When the new group was formed, the state synchronised and DDP rebuilt."""
    membership_epoch: int
    world_size: int
    rank: int
    source_rank: int
    """The rank whose state every rank took."""
    epoch: int
    global_step: int
    """The job's progress after the formation (the state taken from ``source_rank``)."""

    @property
    def seconds(self) -> float:
        return self.finished - self.started


@dataclass(frozen=True)
class _Totals:
    ranks: int
    with_batch: int
    samples: int
    done: int
    stopping: int
    changed: int


class _Weights:
    """The current step's weighting, read by the communication hook: this rank's samples and the step's total."""

    def __init__(self) -> None:
        self.samples = 0
        self.total = 1


def _weighted_average(weights: _Weights, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP communication hook: each rank's gradients weighted by its share of the step's samples, then summed, so every
    rank gets the mean gradient over the global batch whatever the ranks' batch sizes (a stand-in's weight is 0)."""
    tensor = bucket.buffer()
    if weights.samples == 0:
        tensor.zero_()
    else:
        tensor.mul_(weights.samples / weights.total)
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda future: future.value()[0])


# DDP checks a hook's annotations by identity; this module's are strings (``from __future__ import annotations``).
_weighted_average.__annotations__ = {
    "weights": _Weights,
    "bucket": dist.GradBucket,
    "return": torch.futures.Future[torch.Tensor],
}


class _Feed:
    """One epoch of a loader whose batch sampler is a :class:`LedgerBatchSampler`: the item in hand (what the loader
    delivered, and its sample indices; None for a stand-in) until its step is done with."""

    def __init__(self, loader: Iterable[Any], sampler: LedgerBatchSampler) -> None:
        self.sampler = sampler
        self._iterator = iter(loader)
        self.data: Any = None
        self._indices: np.ndarray | None = None
        self._holding = False
        self.exhausted = False
        """True once the loader ended: the epoch is done across the job (every batch is committed)."""

    @property
    def indices(self) -> np.ndarray | None:
        return self._indices if self._holding else None

    def take(self) -> int:
        """This rank's samples for the next step (0 for a stand-in, and once the loader ended; the last item's data
        then stands in)."""
        if not self._holding and not self.exhausted:
            try:
                self.data = next(self._iterator)
                self._indices = self.sampler.delivered()
                self._holding = True
            except StopIteration:
                self.exhausted = True
        indices = self.indices
        return 0 if indices is None else len(indices)

    def release(self) -> None:
        self._holding = False


class Step:
    """One training step (see :meth:`ElasticTrainer.steps`); use it as a context manager around the forward and
    backward passes.

    Entering zeroes the gradients; leaving without an error applies the optimizer once and counts the step; when a
    collective failed inside (a peer died), leaving re-forms the group, swallows the error, and the step is redone.
    """

    def __init__(
        self, trainer: ElasticTrainer, sampler: LedgerBatchSampler, data: Any, indices: np.ndarray | None, total: int
    ) -> None:
        self._trainer = trainer
        self._sampler = sampler
        self.data = data
        """What the loader delivered: this rank's batch, or a stand-in when :attr:`size` is 0."""
        self.indices = indices if indices is not None else np.empty(0, dtype=np.int64)
        """The batch's sample indices in the dataset (empty for a stand-in)."""
        self.size = len(self.indices)
        """This rank's samples in this step (0: its gradients get weight 0)."""
        self.total = total
        """The samples of this step across every rank."""
        self.number = trainer.global_step
        """The step's number: the job's count of completed steps before it."""
        self.completed = False
        """True once the optimizer applied this step on this rank (and its batch is committed)."""
        self.finished = False

    @property
    def model(self) -> DistributedDataParallel:
        """The DDP-wrapped model of the current process group (the same as :attr:`ElasticTrainer.ddp`)."""
        return self._trainer.ddp

    def mean(self, value: float) -> float:
        """The average of ``value`` (a per-sample mean on this rank, such as the loss) over the step's samples across
        the ranks; an allreduce, so call it inside the ``with`` block on every rank."""
        totals = torch.tensor([float(value) * self.size, float(self.size)], dtype=torch.float64)
        dist.all_reduce(totals)
        return float(totals[0] / totals[1]) if totals[1] > 0 else math.nan

    def __enter__(self) -> Step:
        self._trainer._optimizer.zero_grad(set_to_none=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self.finished = True
        trainer = self._trainer
        if exc is None:
            trainer._optimizer.step()
            trainer.global_step += 1
            self.completed = True
            # Now, so that a checkpoint saved right after this step records a data position that includes the batch.
            if self.size:
                self._sampler.commit()
            return False
        if trainer._is_communication_failure(exc):
            trainer._reform(f"step {self.number} failed: {_first_line(exc)}")
            return True
        return False


class ElasticTrainer:
    """Elastic DistributedDataParallel over the coordinator (see the module docstring).

    >>> with Worker() as worker, CheckpointManager(worker=worker) as checkpoints:
    ...     model, optimizer = Net(), torch.optim.Adam(...)
    ...     sampler = LedgerBatchSampler(worker, "digits-train", batch_size=32)
    ...     loader = DataLoader(train_set, batch_sampler=sampler, num_workers=2, persistent_workers=True)
    ...     with ElasticTrainer(worker, model, optimizer, checkpoints=checkpoints) as trainer:
    ...         for epoch in trainer.epochs(10):
    ...             for step in trainer.steps(loader):
    ...                 with step:
    ...                     x, y = step.data
    ...                     F.cross_entropy(step.model(x), y).backward()
    ...             trainer.save()  # in the background: model, optimizer, epoch, step (and the data position)

    Starting (``with``, or :meth:`start`) forms the process group and brings this replica to the job's state: the
    others' when the job is already training (this process restarted, or joined later), else the latest checkpoint of
    ``checkpoints`` (model, optimizer, extra state, epoch and step; the task's data position is rewound with it), else
    the state it was given, synchronised from rank 0.

    Args:
        worker: the started :class:`~dtruntime.Worker` of this process.
        model: the module to train (on the CPU with gloo); the trainer wraps it in DDP for each process group.
        optimizer: the optimizer of ``model``'s parameters; the trainer calls ``step()`` once per completed step.
        checkpoints: where a starting job resumes from (optional).
        state: more objects with ``state_dict``/``load_state_dict`` (LR schedulers, ...) that every replica must share
            and checkpoints must keep.
        backend: ``"gloo"`` (CPU), or ``"nccl"`` on GPUs.
        name: the coordinator barrier names the rendezvous uses (one per trainer of a task).
        timeout: seconds a collective of the process group may take before it fails (then the group re-forms).
        rendezvous_timeout: seconds a formation may wait for the task's members (``min_world_size`` of them).
        store_host: the address rank 0 publishes for its store (default: its interface towards the coordinator).
        store_timeout: seconds the ranks wait for each other at the store.
        ddp_options: keyword arguments for ``DistributedDataParallel`` (``find_unused_parameters``, ...).
        poll_interval: the wait between votes while no rank has a batch and the epoch is not done (it grows to 0.5 s).
    """

    def __init__(
        self,
        worker: Worker,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        checkpoints: CheckpointManager | None = None,
        state: Mapping[str, Stateful] | None = None,
        backend: str = "gloo",
        name: str = "torch",
        timeout: float = 300.0,
        rendezvous_timeout: float = 600.0,
        store_host: str | None = None,
        store_timeout: float = 60.0,
        ddp_options: Mapping[str, Any] | None = None,
        poll_interval: float = 0.05,
    ) -> None:
        self._worker = worker
        self._model = model
        self._optimizer = optimizer
        self._checkpoints = checkpoints
        self._extra = dict(state or {})
        self._backend = backend
        self._name = name
        self._timeout = timeout
        self._rendezvous_timeout = rendezvous_timeout
        self._store_host = store_host
        self._store_timeout = store_timeout
        self._ddp_options = dict(ddp_options or {})
        self._poll_interval = poll_interval
        self.epoch = 0
        """The epoch being trained (the next one once an epoch's steps are done)."""
        self.global_step = 0
        """Steps the job completed so far (the same on every rank)."""
        self.stopped = False
        """True once the task was stopped: :meth:`epochs` and :meth:`steps` end on every rank at the same step."""
        self.formations: list[Formation] = []
        """Every formation of the process group on this rank, the first one included."""
        self.joined_running_job = False
        """True when this replica took the state of a job that was already training (a restarted or added worker)."""
        self.resumed_from: LoadedCheckpoint | None = None
        """The checkpoint a starting job resumed from, if any."""
        self._weights = _Weights()
        self._group: Group | None = None
        self._ddp: DistributedDataParallel | None = None
        self._has_state = False
        self._closing = threading.Event()
        self._watchdog: threading.Thread | None = None

    # MARK: lifecycle

    def start(self) -> ElasticTrainer:
        """Forms the process group and brings this replica to the job's state (see the class docstring)."""
        if self._watchdog is not None:
            raise RuntimeError("the trainer is already started")
        if dist.is_initialized():
            raise RuntimeError(
                "torch.distributed's default process group is already initialised: the trainer forms (and re-forms) "
                "it itself; destroy it first (dist.destroy_process_group())"
            )
        self._watchdog = threading.Thread(target=self._watch, name="dtr-torch-watchdog", daemon=True)
        self._watchdog.start()
        try:
            self._form("start", time.time())
        except RendezvousStopped:
            self.stopped = True  # the task was stopped before this worker could join: nothing to train
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Destroys the process group (the processes stay)."""
        self._closing.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join()
        self._teardown()

    def __enter__(self) -> ElasticTrainer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # MARK: state

    @property
    def ddp(self) -> DistributedDataParallel:
        """The model wrapped in DDP for the current process group. It is rebuilt at every re-forming: use it (or
        :attr:`Step.model`) inside each step rather than keeping a reference."""
        if self._ddp is None:
            raise RuntimeError("the trainer has no process group: use `with ElasticTrainer(...)` (or start())")
        return self._ddp

    @property
    def module(self) -> torch.nn.Module:
        """The plain model (for evaluation: every rank holds the same weights)."""
        return self._model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    @property
    def group(self) -> Group | None:
        """The current process group (None while re-forming)."""
        return self._group

    @property
    def reforms(self) -> int:
        """How many times the process group re-formed after the first formation."""
        return max(0, len(self.formations) - 1)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to resume: the model's and the optimizer's state_dicts, the extra state's, the epoch
        and the global step (the tensors are the live ones: ``CheckpointManager.save`` copies them before it
        returns)."""
        return {
            "model": self._model.state_dict(),
            "optimizer": self._optimizer.state_dict(),
            "state": {key: value.state_dict() for key, value in self._extra.items()},
            "epoch": self.epoch,
            "global_step": self.global_step,
        }

    def save(
        self,
        *,
        metrics: Mapping[str, float] | None = None,
        blocking: bool = False,
    ) -> SavedCheckpoint | concurrent.futures.Future[SavedCheckpoint]:
        """Saves :meth:`state_dict` as the checkpoint of the current step through ``checkpoints`` (one part per rank,
        two-phase commit; the coordinator records the data position with it). In the background by default: the state
        is copied before this returns and a ``Future`` is returned; ``blocking=True`` returns once it is committed.
        Call it on every rank, between steps (the batches of the completed steps are committed by then)."""
        if self._checkpoints is None:
            raise RuntimeError("the trainer has no CheckpointManager: pass checkpoints= to ElasticTrainer to save")
        return self._checkpoints.save(
            self.state_dict(), step=self.global_step, epoch=self.epoch, metrics=metrics, blocking=blocking
        )

    def load_state_dict(self, saved: Mapping[str, Any]) -> None:
        """Loads a :meth:`state_dict` into this replica."""
        if set(saved["state"]) != set(self._extra):
            raise ValueError(f"the saved extra state has {sorted(saved['state'])}, this trainer {sorted(self._extra)}")
        self._model.load_state_dict(saved["model"])
        # The optimizer keeps the tensors it is given (when dtype and device match): give it its own.
        self._optimizer.load_state_dict(copy.deepcopy(saved["optimizer"]))
        for key, value in self._extra.items():
            value.load_state_dict(saved["state"][key])
        self.epoch = int(saved["epoch"])
        self.global_step = int(saved["global_step"])

    # MARK: the training loop

    def epochs(self, total: int) -> Iterator[int]:
        """The epochs left to train, from :attr:`epoch` up to ``total`` (exclusive); ends early when the task stops.
        Iterate :meth:`steps` to its end in each."""
        if not self.stopped:
            self._require_group()
        while self.epoch < total and not self.stopped:
            epoch = self.epoch
            yield epoch
            if self.epoch == epoch and not self.stopped:
                raise RuntimeError(
                    f"epoch {epoch} did not finish: iterate trainer.steps(...) to its end in every epoch, on every rank"
                )

    def steps(self, loader: Iterable[Any]) -> Iterator[Step]:
        """The current epoch's steps, in step with the other ranks.

        ``loader`` is a ``DataLoader`` whose ``batch_sampler`` is a :class:`LedgerBatchSampler` (or the sampler
        itself: its batches of indices are then the data). Every rank gets one :class:`Step` per job step and runs
        it ``with step:``. A batch is committed to the ledger once its step is done. The iteration ends on every rank
        at the same step: when the epoch is done across the job (:attr:`epoch` then advances), or when the task is
        stopped (:attr:`stopped`).
        """
        self._require_group()
        sampler = loader if isinstance(loader, LedgerBatchSampler) else getattr(loader, "batch_sampler", None)
        if not isinstance(sampler, LedgerBatchSampler):
            raise TypeError(
                "trainer.steps() needs a DataLoader(..., batch_sampler=LedgerBatchSampler(...)) or the sampler itself "
                f"(got {type(loader).__name__})"
            )
        epoch = self.epoch
        sampler.set_epoch(epoch)
        feed = _Feed(loader, sampler)
        idle = 0
        try:
            # A re-forming may take the state of a rank that had finished this epoch: then it is done here too.
            while not self.stopped and self.epoch == epoch:
                samples = feed.take()
                totals = self._vote_or_reform(samples, feed.exhausted)
                if totals is None:
                    continue
                if totals.stopping:
                    self.stopped = True
                elif totals.samples:
                    idle = 0
                    self._weights.samples, self._weights.total = samples, totals.samples
                    step = Step(self, sampler, feed.data, feed.indices, totals.samples)
                    before = self.global_step
                    yield step
                    self._settle(step, before, feed)
                elif totals.done == totals.ranks:
                    self.epoch = epoch + 1
                else:
                    feed.release()  # stand-ins only: take the next items
                    idle += 1
                    if idle > _FREE_IDLE_VOTES:
                        time.sleep(min(self._poll_interval * (idle - _FREE_IDLE_VOTES), 0.5))
        finally:
            sampler.drop()

    def _settle(self, step: Step, before: int, feed: _Feed) -> None:
        """After a step: its batch is done with if the step was applied here, or if the state a re-forming adopted
        includes it (a rank completed it); otherwise the step is redone with the same batch."""
        if not step.finished:
            raise RuntimeError("run every step of trainer.steps(...) as `with step:`, on every rank")
        if step.completed:
            feed.release()  # applied and committed
        elif self.global_step > before:
            if step.size:
                feed.sampler.commit()
            feed.release()

    # MARK: collectives

    def _vote_or_reform(self, samples: int, done: bool) -> _Totals | None:
        """The step's vote; None when the ranks re-formed instead (the vote failed, or the membership moved)."""
        try:
            totals = self._vote(samples, done)
        except RuntimeError as error:
            if not self._is_communication_failure(error):
                raise
            self._reform(f"vote at step {self.global_step} failed: {_first_line(error)}")
            return None
        if totals.changed:
            self._reform("membership changed")
            return None
        return totals

    def _vote(self, samples: int, done: bool) -> _Totals:
        group = self._require_group()
        changed = self._worker.membership_epoch != group.membership_epoch
        vote = torch.tensor(
            [1.0, samples > 0, samples, done, self._worker.stop_requested, changed], dtype=torch.float64
        )
        dist.all_reduce(vote)
        ranks, with_batch, total, finished, stopping, moved = (int(value) for value in vote.tolist())
        return _Totals(ranks, with_batch, total, finished, stopping, moved)

    def _is_communication_failure(self, error: BaseException) -> bool:
        """Whether ``error`` is a collective that failed (a peer died, the group was aborted, a timeout), not a bug."""
        if not isinstance(error, RuntimeError):
            return False
        group = self._group
        if group is None or group.aborted:
            return True
        message = str(error).lower()
        return any(marker in message for marker in _COMMUNICATION_MARKERS)

    # MARK: forming

    def _reform(self, reason: str) -> None:
        started = time.time()
        log.info(
            "worker %s re-forms the process group at step %d: %s", self._worker.worker_id, self.global_step, reason
        )
        self._teardown()
        try:
            self._form(reason, started)
        except RendezvousStopped:
            self.stopped = True  # stopped while re-forming: the loops end on every rank that is left

    def _form(self, reason: str, started: float) -> None:
        """Meets the others at the coordinator, forms a process group, synchronises the state and builds DDP; starts
        over at the next membership epoch when a member fails meanwhile."""
        deadline = time.monotonic() + self._rendezvous_timeout
        while True:
            meeting = meet(
                self._worker,
                name=self._name,
                standing=self._standing(),
                timeout=max(1.0, deadline - time.monotonic()),
                store_host=self._store_host,
                store_timeout=self._store_timeout,
            )
            try:
                self._group = form(meeting, self._backend, self._timeout, self._worker.coordinator)
                best = max(meeting.standings)
                if best < _HAS_STATE:  # nobody has a state: the job starts
                    self._resume_from_checkpoint()
                    source = 0
                else:
                    source = meeting.standings.index(best)
                    if not self._has_state:
                        self.joined_running_job = True
                self._broadcast_state(source)
                self._has_state = True
                ddp = DistributedDataParallel(self._model, **self._ddp_options)
                ddp.register_comm_hook(self._weights, _weighted_average)
                self._ddp = ddp
            except RuntimeError as error:
                if time.monotonic() > deadline:
                    raise
                log.info("worker %s: forming the group failed (%s); again", self._worker.worker_id, error)
                self._teardown()
                continue
            self.formations.append(
                Formation(
                    reason=reason,
                    started=started,
                    finished=time.time(),
                    membership_epoch=meeting.membership_epoch,
                    world_size=meeting.world_size,
                    rank=meeting.rank,
                    source_rank=source,
                    epoch=self.epoch,
                    global_step=self.global_step,
                )
            )
            log.info(
                "worker %s: rank %d of %d at membership epoch %d, epoch %d, step %d (state of rank %d)",
                self._worker.worker_id,
                meeting.rank,
                meeting.world_size,
                meeting.membership_epoch,
                self.epoch,
                self.global_step,
                source,
            )
            return

    def _resume_from_checkpoint(self) -> None:
        """Every rank of a starting job loads the latest checkpoint (the coordinator rewinds the data once)."""
        if not self._has_state and self._checkpoints is not None:
            loaded = self._checkpoints.restore()
            if loaded is not None:
                self.load_state_dict(loaded.state)
                self.resumed_from = loaded
        self._has_state = True

    def _broadcast_state(self, source: int) -> None:
        """Every rank takes the state of ``source`` (bit for bit: torch.save's bytes, broadcast)."""
        group = self._require_group()
        if group.world_size == 1:
            return
        device = torch.device("cuda", torch.cuda.current_device()) if self._backend == "nccl" else torch.device("cpu")
        if group.rank == source:
            buffer = io.BytesIO()
            torch.save(self.state_dict(), buffer)
            payload = torch.from_numpy(np.frombuffer(buffer.getbuffer(), dtype=np.uint8).copy()).to(device)
            size = torch.tensor([payload.numel()], dtype=torch.int64, device=device)
        else:
            size = torch.zeros(1, dtype=torch.int64, device=device)
        dist.broadcast(size, src=source)
        if group.rank != source:
            payload = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
        dist.broadcast(payload, src=source)
        if group.rank != source:
            self.load_state_dict(torch.load(io.BytesIO(payload.cpu().numpy().tobytes()), map_location="cpu"))

    def _teardown(self) -> None:
        """Drops DDP and destroys the process group, aborting it first: a collective still using it fails (on the peers
        too) instead of waiting for its timeout, and so does any use of a DDP module kept from before."""
        group, self._group = self._group, None
        self._ddp = None
        if group is not None:
            group.abort()
            group.destroy()
        elif dist.is_initialized():  # a formation that failed half-way (torch sets the group before its barrier)
            dist.destroy_process_group()
        self._optimizer.zero_grad(set_to_none=True)

    def _standing(self) -> float:
        if self.epoch >= 1 << 20 or self.global_step >= 1 << 32:
            raise OverflowError("ElasticTrainer supports up to 2^20 epochs and 2^32 steps")
        return float((_HAS_STATE if self._has_state else 0) | (self.epoch << 32) | self.global_step)

    def _require_group(self) -> Group:
        if self._group is None:
            raise RuntimeError("the trainer has no process group: use `with ElasticTrainer(...)` (or start())")
        return self._group

    # MARK: watchdog

    def _watch(self) -> None:
        """Aborts the group when a member departs (the coordinator saw it die or leave) while this rank may wait for
        it in a collective that no connection error will end (a peer that hangs instead of dying)."""
        while not self._closing.wait(0.1):
            group = self._group
            if group is None or group.aborted:
                continue
            try:
                view = self._worker.view
            except RuntimeError:
                continue
            if view.membership_epoch != group.membership_epoch and (
                view.rank is None or view.world_size < group.world_size
            ):
                log.info(
                    "worker %s: a member of the process group departed (membership epoch %d): aborting the group",
                    self._worker.worker_id,
                    view.membership_epoch,
                )
                group.abort()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

"""``LedgerBatchSampler``: a ``torch.utils.data`` batch sampler over the coordinator's shard ledger.

A ``DataLoader`` asks its batch sampler for indices in the main process (its worker processes only load and collate
them), and asks ahead: with ``num_workers=W`` it keeps ``prefetch_factor * W`` batches in flight. This sampler hands
out this rank's batches of the epoch from the ledger (:meth:`Worker.epoch_reader <dtruntime.Worker.epoch_reader>`,
reading ahead) and never blocks: when this rank has nothing to read right now (its shards are done while the others
still read, or it waits for the shards of a worker that died), it yields a *stand-in* (one sample, ``stand_in``) that
the training step gives weight 0. It ends when every shard of the epoch is done across the job.

Nothing is committed here: :class:`~dtruntime.torch.ElasticTrainer` commits each batch to the ledger in the main
process after the step that trained on it (in the order the loader delivers them, which is the order they were
handed out), so a batch that was loaded but not trained on is served again.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator

import numpy as np
from torch.utils.data import Sampler

from dtruntime.worker import EpochReader, Worker


class LedgerBatchSampler(Sampler):
    """This rank's batches of one dataset, epoch by epoch, from the shard ledger (see the module docstring).

    >>> sampler = LedgerBatchSampler(worker, "digits-train", batch_size=32)
    >>> loader = DataLoader(train_set, batch_sampler=sampler, num_workers=2, persistent_workers=True)
    >>> for step in trainer.steps(loader):       # the trainer sets the epoch and commits
    ...     ...

    Args:
        worker: the started :class:`~dtruntime.Worker`.
        dataset: the registered dataset's name; its sample indices index the map-style dataset the loader reads.
        batch_size: samples per batch (the last batch of a shard may be smaller).
        stand_in: the index loaded for a stand-in batch (any valid index; its gradients get weight 0).
        on_commit: called in the main process with each batch's indices once its commit is acknowledged (keep
            exactly-once bookkeeping, such as per-sample logs, there).
    """

    def __init__(
        self,
        worker: Worker,
        dataset: str,
        batch_size: int,
        *,
        stand_in: int = 0,
        on_commit: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        self.worker = worker
        self.dataset = dataset
        self.batch_size = batch_size
        self.stand_in = stand_in
        self.on_commit = on_commit
        self.epoch = 0
        self._reader: EpochReader | None = None
        # What each batch handed to the loader was, in order: its indices, or None for a stand-in.
        self._yielded: collections.deque[np.ndarray | None] = collections.deque()

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration reads (:class:`~dtruntime.torch.ElasticTrainer` sets it)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        self.drop()
        reader = self.worker.epoch_reader(self.dataset, self.epoch, self.batch_size, on_commit=self.on_commit)
        self._reader = reader
        while True:
            batch = reader.take_next()
            if batch is not None:
                self._yielded.append(batch)
                yield batch.tolist()
            elif reader.done:
                return
            else:
                self._yielded.append(None)
                yield [self.stand_in]

    # MARK: the trainer's side

    def delivered(self) -> np.ndarray | None:
        """The indices of the batch the loader delivered next (None for a stand-in). Call once per delivered batch."""
        if not self._yielded:
            raise RuntimeError(
                "the loader delivered more batches than this sampler handed out: give the DataLoader this sampler as "
                "its batch_sampler, and iterate it once per epoch"
            )
        return self._yielded.popleft()

    def commit(self) -> bool:
        """Commits the oldest batch handed out and not committed (the one the step just trained on)."""
        return self._reader.commit() if self._reader is not None else True

    def drop(self) -> None:
        """Forgets the batches handed out and not committed: the ledger serves them again."""
        if self._reader is not None:
            self._reader.drop()
            self._reader = None
        self._yielded.clear()

    @property
    def done(self) -> bool:
        """True once the current epoch's shards are all done across the job."""
        return self._reader is not None and self._reader.done

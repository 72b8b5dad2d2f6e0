"""The standalone committer: with no coordinator, the checkpoint manager is the commit point.

It writes the part atomically, then a JSON manifest with the part's size and sha256, atomically, last: a checkpoint
exists once its manifest does. Then it applies the retention policy. The layout and the guarantees are in
docs/CHECKPOINTS.md.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading

from dtruntime.checkpoint_keys import CheckpointKey, parse_checkpoint_id
from dtruntime.checkpoint_manifest import CheckpointManifest, CheckpointPart, CheckpointStatus
from dtruntime.checkpoint_retention import RetentionPolicy, commit_order
from dtruntime.checkpoint_save import PartWriter, SavedCheckpoint, SaveRequest, utc_now
from dtruntime.checkpoint_store import BlobStore
from dtruntime.errors import CheckpointCorrupted, CheckpointError, CheckpointNotFound

log = logging.getLogger("dtruntime")

_MAX_ATTEMPTS = 100_000


class StandaloneCommitter:
    """Commits the checkpoints of one task in one store, and lists, finds and expires them."""

    def __init__(self, store: BlobStore, task_id: str, retention: RetentionPolicy | None) -> None:
        self.store = store
        self.task_id = task_id
        self._retention = retention
        self._lock = threading.Lock()  # the manifest cache
        self._claim_lock = threading.Lock()  # one attempt number per save, one commit time per commit
        self._retention_lock = threading.Lock()  # one retention pass at a time
        self._manifests: dict[str, CheckpointManifest] = {}
        self._last_commit: datetime.datetime | None = None

    # MARK: saving

    def claim(self, step: int) -> CheckpointKey:
        """A fresh ``task/step-…-aN`` for a save of ``step``: attempt numbers go up when a step is saved again (the
        last committed attempt of a step is the one loaded)."""
        with self._claim_lock:
            for attempt in range(1, _MAX_ATTEMPTS):
                key = CheckpointKey(self.task_id, step, attempt)
                if self.store.claim(str(key)):
                    return key
        raise CheckpointError(
            f"step {step} of task {self.task_id!r} was saved {_MAX_ATTEMPTS} times: clean up the store"
        )

    def commit(self, write: PartWriter, request: SaveRequest, key: CheckpointKey | None = None) -> SavedCheckpoint:
        """Writes the part (to ``key``, claimed by the caller, or to a fresh claim), then the manifest; then applies
        retention. A failure removes what was written."""
        store = self.store
        created = utc_now()
        key = key or self.claim(request.step)
        checkpoint_id, part_key = str(key), key.part_key(0)
        try:
            written = write(store, part_key)
            manifest = CheckpointManifest(
                checkpoint_id=checkpoint_id,
                task_id=self.task_id,
                step=request.step,
                epoch=request.epoch,
                world_size=1,
                parts=(CheckpointPart(0, part_key, written.size_bytes, written.sha256),),
                metrics=request.metrics,
                metadata=request.metadata,
                created_at=created,
                committed_at=self._commit_time(),
                store=store.location,
                manifest_key=key.manifest_key,
            )
            # The commit point: the checkpoint is visible once its manifest exists, and the manifest is written whole.
            store.put(key.manifest_key, json.dumps(manifest.to_json(), indent=1, allow_nan=False).encode() + b"\n")
        except BaseException:
            try:
                store.delete_prefix(checkpoint_id)
            except CheckpointError as cleanup:
                log.warning("could not remove the unfinished checkpoint %s: %s", checkpoint_id, cleanup)
            raise
        with self._lock:
            self._manifests[checkpoint_id] = manifest
        self._apply_retention()
        return SavedCheckpoint(
            checkpoint_id=checkpoint_id,
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

    def _commit_time(self) -> datetime.datetime:
        """Now, but strictly after every commit this store has seen: commit order decides which checkpoint is the
        latest, and two saves within one millisecond must not tie."""
        with self._claim_lock:
            if self._last_commit is None:
                committed = self.committed()
                self._last_commit = committed[-1].committed_at if committed else utc_now()
            moment = max(utc_now(), self._last_commit + datetime.timedelta(milliseconds=1))
            moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # the manifest keeps milliseconds
            self._last_commit = moment
            return moment

    # MARK: listing

    def committed(self) -> list[CheckpointManifest]:
        """Manifests of the committed checkpoints (those with a manifest), in commit order.

        "Latest" is the last committed, not the highest step: a job that rolled back to an earlier checkpoint saves
        the steps it reaches again as new attempts, and those are newer than the abandoned higher steps.
        """
        ids = []
        for listed in self.store.list_keys(self.task_id):
            checkpoint_id, slash, name = listed.rpartition("/")
            key = parse_checkpoint_id(checkpoint_id) if slash and name == "manifest.json" else None
            if key is not None and key.task_id == self.task_id:
                ids.append(checkpoint_id)
        return sorted((self._manifest(checkpoint_id) for checkpoint_id in ids), key=commit_order)

    def find(self, step: int | None) -> CheckpointManifest:
        """The last committed checkpoint of ``step`` (of any step when None); ``CheckpointNotFound`` when none."""
        committed = self.committed()
        matching = [manifest for manifest in committed if step is None or manifest.step == step]
        if not matching:
            where = f"{self.store.location.uri} (task {self.task_id!r})"
            if not committed:
                raise CheckpointNotFound(f"no checkpoint in {where} yet")
            steps = ", ".join(str(s) for s in sorted({manifest.step for manifest in committed}))
            raise CheckpointNotFound(f"no checkpoint of step {step} in {where}; saved steps: {steps}")
        return matching[-1]

    def _manifest(self, checkpoint_id: str) -> CheckpointManifest:
        with self._lock:
            cached = self._manifests.get(checkpoint_id)
        if cached is not None:
            return cached
        key = f"{checkpoint_id}/manifest.json"
        raw = self.store.get(key)
        if raw is None:
            raise CheckpointNotFound(f"checkpoint {checkpoint_id} was deleted meanwhile ({self.store.url(key)})")
        try:
            manifest = CheckpointManifest.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise CheckpointCorrupted(f"the manifest {self.store.url(key)} is unreadable: {error!r}") from error
        if manifest.checkpoint_id != checkpoint_id or not manifest.parts:
            raise CheckpointCorrupted(
                f"the manifest {self.store.url(key)} does not describe checkpoint {checkpoint_id}"
            )
        with self._lock:
            self._manifests[checkpoint_id] = manifest
        return manifest

    # MARK: retention

    def _apply_retention(self) -> None:
        if self._retention is None:
            return
        # One pass at a time: concurrent saves must not delete each other's choices.
        with self._retention_lock:
            for manifest in self._retention.expired(self.committed()):
                log.info("checkpoint retention deletes %s", manifest.checkpoint_id)
                self.store.delete_prefix(manifest.checkpoint_id, first=manifest.manifest_key or None)
                with self._lock:
                    self._manifests.pop(manifest.checkpoint_id, None)

    def close(self) -> None:
        self.store.close()

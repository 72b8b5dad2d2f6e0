"""Where a checkpoint's objects live in a store: the coordinator's layout (``CheckpointID`` in
``Sources/Checkpoint/CheckpointID.swift``), shared by standalone and distributed checkpoints.

``task/step-000000001000-a1`` names attempt 1 of step 1000 of a task and is the prefix of its objects: the parts
``…/rank-00003.part`` and the manifest ``…/manifest.json``. Steps are padded to 12 digits and ranks to 5 (longer
numbers are written whole). ``testdata/object_key_vectors.json`` holds examples both sides are tested against.
"""

from __future__ import annotations

from dataclasses import dataclass

from dtruntime import validation


@dataclass(frozen=True, order=True)
class CheckpointKey:
    """One attempt at saving a step of a task; ``str()`` gives its id, e.g. ``default/step-000000001000-a1``."""

    task_id: str
    step: int
    attempt: int

    def __str__(self) -> str:
        return f"{self.task_id}/step-{self.step:012d}-a{self.attempt}"

    def part_key(self, rank: int) -> str:
        """The object key of a rank's part."""
        return f"{self}/rank-{rank:05d}.part"

    @property
    def manifest_key(self) -> str:
        """The object key of the manifest: the checkpoint exists once it does."""
        return f"{self}/manifest.json"


def parse_checkpoint_id(text: str) -> CheckpointKey | None:
    """The checkpoint an id names, or None when ``text`` is not an id written as :class:`CheckpointKey` writes them
    (so a listing skips anything else a store holds)."""
    task, slash, rest = text.partition("/")
    if not slash or not validation.is_task_id(task) or not rest.startswith("step-"):
        return None
    step_text, dash, attempt_text = rest[len("step-") :].partition("-")
    if not dash or not attempt_text.startswith("a"):
        return None
    attempt_text = attempt_text[1:]
    if not (step_text.isascii() and step_text.isdigit() and attempt_text.isascii() and attempt_text.isdigit()):
        return None
    step, attempt = int(step_text), int(attempt_text)
    if step > validation.MAX_INT64 or attempt < 1:
        return None
    key = CheckpointKey(task, step, attempt)
    return key if str(key) == text else None

"""Typed errors for everything the coordinator can answer, mapped from the machine-readable reason the coordinator
sends with every error (``dtr-reason``, see docs/API.md), else from the gRPC status code. Nothing here reads the
coordinator's messages: they are for people."""

from __future__ import annotations

import random

import grpc


class DtrError(Exception):
    """Base class of every dtruntime error: ``code`` is the gRPC status, ``reason`` the coordinator's stable reason
    (``"STALE_EPOCH"``, ``"TASK_FULL"`` ...; empty when none came, e.g. the coordinator was unreachable), ``message``
    says what to do next."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason


class CoordinatorUnavailable(DtrError, ConnectionError):
    """The coordinator cannot be reached, or is shutting down."""


class InvalidArgument(DtrError, ValueError):
    """The request broke a rule; the message names the field. Nothing changed on the coordinator."""


class NotFound(DtrError, LookupError):
    """The named worker, dataset or checkpoint does not exist."""


class UnknownWorker(NotFound):
    """The coordinator does not know this worker (reason ``UNKNOWN_WORKER``: never registered, or forgotten after it
    left): register again. :class:`~dtruntime.Worker` does."""


class AlreadyExists(DtrError):
    """The thing exists with a different definition."""


class FailedPrecondition(DtrError):
    """The request is valid but the coordinator's state does not allow it (e.g. a stale membership epoch)."""


class NotAMember(FailedPrecondition):
    """The worker is no longer a member of its task (reason ``NOT_A_MEMBER``: declared dead, or it left): register
    again. :class:`~dtruntime.Worker` waits for its heartbeat thread to do so and retries data calls."""


class StaleEpoch(FailedPrecondition):
    """The call carried an older membership epoch than the task's (reason ``STALE_EPOCH``): the membership changed
    since, and ranks may have too. ``membership_epoch`` is the task's current one (None if not sent)."""

    def __init__(
        self, message: str, code: grpc.StatusCode | None = None, reason: str = "", membership_epoch: int | None = None
    ) -> None:
        super().__init__(message, code, reason)
        self.membership_epoch = membership_epoch


class ShardMoved(FailedPrecondition):
    """The shard's lease moved to another worker (reason ``SHARD_MOVED``): skip it and ask for the assignment again.
    :class:`~dtruntime.EpochReader` does."""


class Aborted(DtrError):
    """Interrupted by a concurrent change, e.g. a barrier participant died."""


class DeadlineExceeded(DtrError, TimeoutError):
    """The operation did not finish in time."""


class ResourceExhausted(DtrError):
    """A limit was reached (rate, size or count)."""


class TaskFull(ResourceExhausted):
    """The task already has its world size of members (reason ``TASK_FULL``): a worker may join once one leaves or
    dies. :class:`~dtruntime.Worker` keeps trying while it waits for its rendezvous."""


class Unauthenticated(DtrError, PermissionError):
    """Missing or wrong credentials."""


class PermissionDenied(DtrError, PermissionError):
    """The credentials do not allow this."""


class WorkerSecretWrong(PermissionDenied):
    """The call names a worker but does not carry its secret (reason ``WORKER_SECRET_WRONG``): only the client that
    registered a worker (it remembers the secret its registration returned) may act as it."""


class WorkerIdInUse(PermissionDenied):
    """The worker id is a member registered by another process that heartbeats (reason ``WORKER_ID_IN_USE``): register
    again once that process has been silent for the suspect timeout (``retry_after`` seconds at the earliest), or use
    another id."""

    def __init__(
        self, message: str, code: grpc.StatusCode | None = None, reason: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(message, code, reason)
        self.retry_after = retry_after


class Unimplemented(DtrError, NotImplementedError):
    """The coordinator does not implement this call (an older version)."""


class BarrierError(DtrError):
    """A barrier generation failed for every participant; ``missing_ranks`` and ``missing_workers`` say who was
    missing (or departed), by rank."""

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode | None = None,
        missing_ranks: list[int] | None = None,
        missing_workers: list[str] | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message, code, reason)
        self.missing_ranks = missing_ranks or []
        self.missing_workers = missing_workers or []


class BarrierAborted(BarrierError, Aborted):
    """A participant died or left, or the membership the barrier was opened for changed, before the release (reason
    ``BARRIER_ABORTED``)."""


class BarrierTimeout(BarrierError, DeadlineExceeded):
    """The barrier's timeout passed before everyone arrived (reason ``BARRIER_TIMEOUT``)."""


class BarrierMismatch(BarrierError, InvalidArgument):
    """The participants of the generation disagree on the reduce (op, type or length) or on ``expected`` (reason
    ``BARRIER_MISMATCH``): a bug in the training script, not a transient failure."""


_BY_CODE: dict[grpc.StatusCode, type[DtrError]] = {
    grpc.StatusCode.UNAVAILABLE: CoordinatorUnavailable,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}


# Errors a program handles, by the machine-readable reason the coordinator sends in ``dtr-reason``. Reasons not listed
# (generic ones, and those nobody needs to tell apart from others of their code) map by status code; the error's
# ``reason`` still says which it was. testdata/error_reasons.json lists every reason and the class it raises.
_BY_REASON: dict[str, type[DtrError]] = {
    "UNKNOWN_WORKER": UnknownWorker,
    "NOT_A_MEMBER": NotAMember,
    "STALE_EPOCH": StaleEpoch,
    "SHARD_MOVED": ShardMoved,
    "TASK_FULL": TaskFull,
    "WORKER_SECRET_WRONG": WorkerSecretWrong,
    "WORKER_ID_IN_USE": WorkerIdInUse,
    "BARRIER_ABORTED": BarrierAborted,
    "BARRIER_TIMEOUT": BarrierTimeout,
    "BARRIER_MISMATCH": BarrierMismatch,
}


def translate(error: grpc.RpcError, address: str) -> DtrError:
    """Turns a gRPC error into the matching typed error, with an actionable message."""
    if not isinstance(error, grpc.Call):
        return from_status(None, str(error), address)
    metadata = {key: str(value) for key, value in error.trailing_metadata() or ()}
    return from_status(error.code(), error.details() or str(error), address, metadata)


_CODES = {status.value[0]: status for status in grpc.StatusCode}


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def from_status(
    code: grpc.StatusCode | int | None,
    details: str,
    address: str,
    metadata: dict[str, str] | None = None,
) -> DtrError:
    """The typed error for a status (a ``grpc.StatusCode`` or its number, as BarrierStream replies carry it) and the
    trailing metadata it came with (``dtr-reason`` and its details)."""
    if isinstance(code, int):
        code = _CODES.get(code, grpc.StatusCode.UNKNOWN)
    metadata = metadata or {}
    reason = metadata.get("dtr-reason", "")
    cls = _BY_REASON.get(reason) or (_BY_CODE.get(code, DtrError) if code is not None else DtrError)
    if issubclass(cls, BarrierError):
        return cls(
            details,
            code,
            _numbers(metadata.get("dtr-missing-ranks", "")),
            [worker for worker in metadata.get("dtr-missing-workers", "").split(",") if worker],
            reason,
        )
    if cls is StaleEpoch:
        epoch = metadata.get("dtr-membership-epoch", "")
        return StaleEpoch(details, code, reason, int(epoch) if epoch.isdigit() else None)
    if cls is WorkerIdInUse:
        wait = metadata.get("retry-after-ms", "")
        return WorkerIdInUse(details, code, reason, int(wait) / 1000 if wait.isdigit() else None)
    if code == grpc.StatusCode.UNAVAILABLE and not reason:
        # No reason: the coordinator did not answer (gRPC's own status). A TLS coordinator reached without its CA
        # looks the same from here (the connection just closes), so the hint names that cause too.
        message = (
            f"coordinator at {address} unreachable: is `dtr serve` running? If it serves TLS (--tls-cert), give the "
            f"SDK the CA that signed its certificate (DTR_CA_FILE, or ca_file=) ({details})"
        )
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED and not reason:
        message = f"coordinator at {address} did not answer in time: is it overloaded or stalled? ({details})"
    else:
        message = details
    return cls(message, code, reason)


# The longest wait for a rate limit the SDK honours at once (the coordinator asks for at most 1 s).
MAX_RATE_LIMIT_WAIT = 5.0


def rate_limit_wait(error: grpc.RpcError) -> float | None:
    """How long to wait before trying a call the coordinator's rate limit refused again: its ``retry-after-ms``
    (capped at ``MAX_RATE_LIMIT_WAIT``) plus up to 20 % jitter, so that clients sharing one budget do not all come back
    at once. None when ``error`` is not a rate limit (RESOURCE_EXHAUSTED without ``retry-after-ms`` is final)."""
    if not isinstance(error, grpc.Call) or error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return None
    for key, value in error.trailing_metadata() or ():
        if key == "retry-after-ms":
            try:
                return min(max(0.0, int(value) / 1000), MAX_RATE_LIMIT_WAIT) * random.uniform(1.0, 1.2)
            except ValueError:
                return None
    return None


# MARK: checkpoints


class CheckpointError(DtrError):
    """A checkpoint could not be saved or loaded; the message names the checkpoint and says what to do."""


class CheckpointNotFound(CheckpointError, NotFound):
    """No committed checkpoint matches (none yet, or not that step)."""


class CheckpointCorrupted(CheckpointError):
    """A part's bytes do not match its manifest (size or sha256), or are not a valid part: it was modified, truncated
    or damaged after the commit. Load another step."""


class CheckpointAborted(CheckpointError, Aborted):
    """The coordinator aborted the distributed checkpoint: a part failed, a participant left or died, or its deadline
    passed. Nothing of it is visible; save again."""


class CheckpointStorageError(CheckpointError, OSError):
    """The checkpoint store refused a read or write: a full or read-only disk, or S3 (endpoint, credentials, bucket)."""

"""Typed errors for everything the coordinator can answer, mapped from gRPC status codes."""

from __future__ import annotations

import random

import grpc


class DtrError(Exception):
    """Base class of every dtruntime error: ``code`` is the gRPC status, ``message`` says what to do next."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class CoordinatorUnavailable(DtrError, ConnectionError):
    """The coordinator cannot be reached, or is shutting down."""


class InvalidArgument(DtrError, ValueError):
    """The request broke a rule; the message names the field. Nothing changed on the coordinator."""


class NotFound(DtrError, LookupError):
    """The named worker, dataset or checkpoint does not exist."""


class AlreadyExists(DtrError):
    """The thing exists with a different definition."""


class FailedPrecondition(DtrError):
    """The request is valid but the coordinator's state does not allow it (e.g. a stale membership epoch)."""


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
    ) -> None:
        super().__init__(message, code)
        self.missing_ranks = missing_ranks or []
        self.missing_workers = missing_workers or []


class BarrierAborted(BarrierError, Aborted):
    """A participant died or left, or the membership the barrier was opened for changed, before the release."""


class BarrierTimeout(BarrierError, DeadlineExceeded):
    """The barrier's timeout passed before everyone arrived."""


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


_BARRIER: dict[grpc.StatusCode | None, type[BarrierError]] = {
    grpc.StatusCode.ABORTED: BarrierAborted,
    grpc.StatusCode.DEADLINE_EXCEEDED: BarrierTimeout,
}


def translate(error: grpc.RpcError, address: str) -> DtrError:
    """Turns a gRPC error into the matching typed error, with an actionable message."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    metadata = dict(error.trailing_metadata() or ()) if isinstance(error, grpc.Call) else {}
    ranks = [int(rank) for rank in str(metadata.get("dtr-missing-ranks", "")).split(",") if rank]
    workers = [worker for worker in str(metadata.get("dtr-missing-workers", "")).split(",") if worker]
    reason = _BY_REASON.get(str(metadata.get("dtr-reason", "")))
    if reason is not None:
        return reason(details, code)
    return from_status(code, details, ranks, workers, address)


# Errors a program handles, by the machine-readable reason the coordinator sends in ``dtr-reason``.
_BY_REASON: dict[str, type[DtrError]] = {"TASK_FULL": TaskFull}


_CODES = {status.value[0]: status for status in grpc.StatusCode}


def from_status(
    code: grpc.StatusCode | int | None,
    details: str,
    missing_ranks: list[int],
    missing_workers: list[str],
    address: str,
) -> DtrError:
    """The typed error for a status (a ``grpc.StatusCode`` or its number, as BarrierStream replies carry it)."""
    if isinstance(code, int):
        code = _CODES.get(code, grpc.StatusCode.UNKNOWN)
    if code == grpc.StatusCode.UNAVAILABLE:
        message = f"coordinator at {address} unreachable: is `dtr serve` running? ({details})"
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"coordinator at {address} did not answer in time: is it overloaded or stalled? ({details})"
    else:
        message = details
    if missing_ranks or (code in _BARRIER and details.startswith("barrier ")):
        return _BARRIER.get(code, BarrierError)(details, code, missing_ranks, missing_workers)
    return _BY_CODE.get(code, DtrError)(message, code) if code is not None else DtrError(message)


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

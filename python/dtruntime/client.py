"""The low-level gRPC client: one channel to the coordinator, typed results, typed errors."""

from __future__ import annotations

import datetime
import enum
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from dtruntime import tls_check
from dtruntime.barrier_hub import HUBS, MAX_CALL_BYTES, BarrierHub
from dtruntime.checkpoint_manifest import CheckpointManifest, CheckpointStatus, StoreLocation
from dtruntime.errors import CoordinatorUnavailable, DtrError, ResourceExhausted, rate_limit_wait, translate
from dtruntime.v1 import coordinator_pb2 as pb
from dtruntime.v1 import coordinator_pb2_grpc as pb_grpc

DEFAULT_ADDRESS = "localhost:50051"
MAX_MESSAGE_BYTES = 1 << 30
E = TypeVar("E", bound=enum.Enum)
RequestT = TypeVar("RequestT", bound=Message)
ResponseT = TypeVar("ResponseT", bound=Message)
In = TypeVar("In")
Out = TypeVar("Out")


def resolve_address(address: str | None) -> str:
    """The coordinator's gRPC address: the argument, else ``$DTR_COORDINATOR``, else ``localhost:50051``."""
    return address or os.environ.get("DTR_COORDINATOR") or DEFAULT_ADDRESS


class Command(enum.Enum):
    """What the coordinator tells a worker to do next."""

    CONTINUE = pb.COMMAND_CONTINUE
    STOP = pb.COMMAND_STOP
    REJOIN = pb.COMMAND_REJOIN


class WorkerStatus(enum.Enum):
    """A worker's health as the coordinator's failure detector sees it."""

    HEALTHY = pb.WORKER_STATUS_HEALTHY
    SUSPECT = pb.WORKER_STATUS_SUSPECT
    DEAD = pb.WORKER_STATUS_DEAD
    LEFT = pb.WORKER_STATUS_LEFT


def _enum(kind: type[E], value: int, default: E) -> E:
    """The enum member for a wire value; ``default`` for 0 or for a value a newer coordinator added."""
    try:
        return kind(value) if value else default
    except ValueError:
        return default


@dataclass(frozen=True)
class MembershipView:
    """A worker's place in its task at one membership epoch."""

    task_id: str
    rank: int | None
    world_size: int
    membership_epoch: int
    command: Command
    status: WorkerStatus
    reason: str = ""

    @classmethod
    def from_proto(cls, view: pb.MembershipView) -> MembershipView:
        return cls(
            task_id=view.task_id,
            rank=view.rank if view.rank >= 0 else None,
            world_size=view.world_size,
            membership_epoch=view.membership_epoch,
            command=_enum(Command, view.command, Command.CONTINUE),
            status=_enum(WorkerStatus, view.status, WorkerStatus.HEALTHY),
            reason=view.reason,
        )


@dataclass(frozen=True)
class TaskSettings:
    """What a task (training job) was created with, through the HTTP API or by the registration that created it."""

    task_id: str
    min_world_size: int
    """Members the job waits for before training starts, and keeps going with (0: not said)."""
    max_world_size: int
    """Most members the coordinator admits (0: not said)."""
    dataset: str | None
    epochs: int | None
    config: dict[str, Any]
    """The task's ``config`` JSON object ({} when none)."""

    @classmethod
    def from_proto(cls, task: pb.TaskSettings) -> TaskSettings:
        try:
            config = json.loads(task.config_json) if task.config_json else {}
        except ValueError:
            config = {}
        return cls(
            task_id=task.task_id,
            min_world_size=task.min_world_size,
            max_world_size=task.max_world_size,
            dataset=task.dataset or None,
            epochs=task.epochs or None,
            config=config if isinstance(config, dict) else {},
        )


@dataclass(frozen=True)
class Registration:
    """The coordinator's answer to a registration: the worker's view, the heartbeat timing it expects and the settings
    of the task it joined."""

    view: MembershipView
    heartbeat_interval: float
    suspect_after: float
    dead_after: float
    coordinator_version: str
    task: TaskSettings

    @property
    def rank(self) -> int:
        assert self.view.rank is not None, "a registered worker always has a rank"
        return self.view.rank

    @property
    def world_size(self) -> int:
        return self.view.world_size

    @property
    def membership_epoch(self) -> int:
        return self.view.membership_epoch


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset."""

    name: str
    total_samples: int
    shard_size: int
    shuffle: bool
    seed: int
    num_shards: int
    registered_at: datetime.datetime
    created: bool
    """False when an identical spec was already registered (registration is idempotent)."""


@dataclass(frozen=True)
class BarrierResult:
    """A released barrier generation."""

    generation: int
    participant_count: int
    membership_epoch: int
    """The task's membership epoch the barrier was opened at."""
    participants: list[tuple[int, str]]
    """``(rank, worker_id)`` of every participant, by rank, for barriers of a fixed count; empty for a barrier of
    every member, whose participants are exactly the members at ``membership_epoch``."""
    reduced: bytes = b""
    """The reduced values of an allreduce (little-endian, of the payload's type); empty for a plain barrier."""

    @classmethod
    def from_proto(cls, reply: pb.BarrierSyncResponse) -> BarrierResult:
        return cls(
            generation=reply.generation,
            participant_count=reply.participant_count,
            membership_epoch=reply.membership_epoch,
            participants=[(p.rank, p.worker_id) for p in reply.participants],
            reduced=reply.result.data,
        )


@dataclass(frozen=True)
class ShardLease:
    """One shard of a worker's assignment: the sample indices ``[start, end)`` of a dataset, leased for one epoch."""

    shard_id: int
    start: int
    end: int
    sample_seed: int
    """Seed of the order of the shard's samples (``dtruntime.shuffle.sample_order``; the same on every side)."""
    consumed: int
    """Samples of that order already committed: resume after them."""


@dataclass(frozen=True)
class ShardAssignment:
    """A worker's shards of one epoch of a dataset, in epoch order, minus those already done."""

    dataset: str
    epoch: int
    membership_epoch: int
    """The task's membership epoch the assignment was made at: progress reports carry it."""
    shards: list[ShardLease]
    total_shards: int
    done_shards: int
    shuffle: bool
    """Whether sample orders are shuffled (with each shard's ``sample_seed``) or ascending."""

    @property
    def complete(self) -> bool:
        """True when the epoch has nothing left for anyone: no shard listed and every shard done."""
        return not self.shards and self.done_shards == self.total_shards


def shard_assignment(
    reply: pb.GetShardAssignmentResponse, pages: Sequence[pb.GetShardAssignmentResponse] = ()
) -> ShardAssignment:
    """The SDK's view of a GetShardAssignment reply and the pages that followed it (the one place that reads that
    message)."""
    last = pages[-1] if pages else reply
    return ShardAssignment(
        dataset=reply.dataset,
        epoch=reply.epoch,
        membership_epoch=reply.membership_epoch,
        shards=[
            ShardLease(
                shard_id=shard.shard_id,
                start=shard.start,
                end=shard.end,
                sample_seed=shard.sample_seed,
                consumed=shard.consumed,
            )
            for page in (reply, *pages)
            for shard in page.shards
        ],
        total_shards=last.total_shards,
        done_shards=last.done_shards,
        shuffle=reply.shuffle,
    )


@dataclass(frozen=True)
class ShardProgress:
    """The coordinator's record of a shard after a progress report."""

    consumed: int
    """The shard's recorded cursor (may be ahead of the report's, which was then a no-op)."""
    done: bool
    done_shards: int
    total_shards: int

    @classmethod
    def from_proto(cls, reply: pb.ReportShardProgressResponse) -> ShardProgress:
        return cls(
            consumed=reply.consumed, done=reply.done, done_shards=reply.done_shards, total_shards=reply.total_shards
        )


@dataclass(frozen=True)
class CheckpointTicket:
    """Phase one of a distributed checkpoint: where this rank must write its part, and by when."""

    checkpoint_id: str
    rank: int
    world_size: int
    store: StoreLocation
    object_key: str
    """Relative to the store's root; chosen by the coordinator (clients never choose paths)."""
    deadline: datetime.datetime | None
    """When the coordinator aborts the checkpoint if a part is still missing (None when it set no deadline)."""

    @classmethod
    def from_proto(cls, reply: pb.SaveCheckpointResponse) -> CheckpointTicket:
        return cls(
            checkpoint_id=reply.checkpoint_id,
            rank=reply.rank,
            world_size=reply.world_size,
            store=StoreLocation.from_proto(reply.store),
            object_key=reply.object_key,
            deadline=(
                datetime.datetime.fromtimestamp(reply.deadline_unix_ms / 1000, tz=datetime.timezone.utc)
                if reply.deadline_unix_ms > 0
                else None
            ),
        )


@dataclass(frozen=True)
class CheckpointReport:
    """The coordinator's answer to a part report: the checkpoint's status (and its manifest once committed)."""

    checkpoint_id: str
    status: CheckpointStatus
    reported_parts: int
    world_size: int
    manifest: CheckpointManifest | None
    abort_reason: str = ""

    @classmethod
    def from_proto(cls, reply: pb.ReportCheckpointPartResponse) -> CheckpointReport:
        status = _enum(CheckpointStatus, reply.status, CheckpointStatus.PENDING)
        return cls(
            checkpoint_id=reply.checkpoint_id,
            status=status,
            reported_parts=reply.reported_parts,
            world_size=reply.world_size,
            manifest=CheckpointManifest.from_proto(reply.manifest) if reply.HasField("manifest") else None,
            abort_reason=reply.abort_reason,
        )


@dataclass(frozen=True)
class CheckpointLookup:
    """A committed checkpoint's manifest, and whether this lookup reset the task's data ledgers to its position."""

    manifest: CheckpointManifest
    data_restored: bool


class CoordinatorClient:
    """One gRPC channel to the coordinator and typed wrappers of its calls.

    Every method raises a :class:`dtruntime.errors.DtrError` subclass on failure, e.g. ``CoordinatorUnavailable``
    when nothing listens at the address or ``InvalidArgument`` naming the field that broke a rule.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 10.0,
        token: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.address = resolve_address(address)
        self.timeout = timeout
        # The coordinator's --worker-token, sent with every call; DTR_WORKER_TOKEN by default, like the coordinator.
        token = token if token is not None else os.environ.get("DTR_WORKER_TOKEN")
        # A coordinator started with --tls-cert: the CA that signed its certificate (DTR_CA_FILE by default).
        ca_file = ca_file if ca_file is not None else os.environ.get("DTR_CA_FILE")
        if ca_file:
            try:
                with open(ca_file, "rb") as file:
                    roots: bytes | None = file.read()
            except OSError as error:
                raise ValueError(f"cannot read the CA file {ca_file} (DTR_CA_FILE): {error}") from error
        else:
            roots = None
        self._roots = roots
        self._channel = _open_channel(self.address, token, roots)
        # Barrier calls go over one stream shared by every client of this process that talks to the same coordinator
        # with the same credentials (opened at the first barrier).
        self._hub_key = (self.address, token, roots)
        self._hub: BarrierHub | None = None
        self._hub_lock = threading.Lock()
        self._stub = pb_grpc.CoordinatorStub(self._channel)
        # The secret each worker registered through this client was given: every later call naming the worker carries
        # it (``dtr-worker-secret``), so only this client can act as its workers.
        self._secrets: dict[str, str] = {}

    # MARK: membership

    def register_worker(
        self,
        worker_id: str,
        host: str,
        port: int,
        *,
        gpu_count: int = 0,
        labels: Mapping[str, str] | None = None,
        task_id: str = "",
        incarnation: str = "",
        world_size: tuple[int, int] = (0, 0),
    ) -> Registration:
        """Joins ``task_id``; the client keeps the worker's secret for its later calls. ``incarnation`` names this
        process: registering again from another one (with the worker's secret, or once the old one is silent)
        replaces the old process (it leaves, the new one joins). ``world_size`` is ``(min, max)`` for a task this
        registration creates (0: not said)."""
        request = pb.RegisterWorkerRequest(
            worker_id=worker_id,
            host=host,
            port=port,
            gpu_count=gpu_count,
            labels=dict(labels or {}),
            task_id=task_id,
            incarnation=incarnation,
            task_min_world_size=world_size[0],
            task_max_world_size=world_size[1],
        )
        # A live worker registers again (same process, or a restart that proves itself) with the secret it has.
        reply = self._call(self._stub.RegisterWorker, request, worker_id=worker_id)
        if reply.worker_secret:
            self._secrets[worker_id] = reply.worker_secret
        return Registration(
            view=MembershipView.from_proto(reply.view),
            heartbeat_interval=reply.heartbeat_interval_ms / 1000,
            suspect_after=reply.suspect_after_ms / 1000,
            dead_after=reply.dead_after_ms / 1000,
            coordinator_version=reply.coordinator_version,
            task=TaskSettings.from_proto(reply.task),
        )

    def heartbeat(
        self,
        worker_id: str,
        *,
        membership_epoch: int = 0,
        step: int = 0,
        metrics: Mapping[str, float] | None = None,
    ) -> MembershipView:
        request = heartbeat_request(worker_id, membership_epoch, step, metrics)
        return MembershipView.from_proto(self._call(self._stub.Heartbeat, request, worker_id=worker_id).view)

    def deregister_worker(self, worker_id: str, reason: str = "", *, failed: bool = False) -> int:
        """Leaves the task (``failed``: because the worker failed); returns the task's membership epoch after the
        leave."""
        request = pb.DeregisterWorkerRequest(worker_id=worker_id, reason=reason, failed=failed)
        return int(self._call(self._stub.DeregisterWorker, request, worker_id=worker_id).membership_epoch)

    def worker_session(
        self, requests: Iterator[pb.SessionRequest], *, worker_id: str = ""
    ) -> grpc._CallIterator[pb.SessionEvent]:
        """Opens a session stream for ``worker_id``: heartbeats from ``requests`` go up; iterate the result for acks and
        pushes.

        Errors arrive as ``grpc.RpcError`` while iterating (the caller decides how to reconnect).
        """
        return self._stub.WorkerSession(requests, metadata=self._secret_metadata(worker_id))

    # MARK: datasets and shards

    def register_dataset(
        self, name: str, total_samples: int, shard_size: int, *, shuffle: bool = False, seed: int = 0
    ) -> DatasetInfo:
        spec = pb.DatasetSpec(
            name=name, total_samples=total_samples, shard_size=shard_size, shuffle=shuffle, seed=seed & (2**64 - 1)
        )
        reply = self._call(self._stub.RegisterDataset, pb.RegisterDatasetRequest(spec=spec))
        return DatasetInfo(
            name=reply.spec.name,
            total_samples=reply.spec.total_samples,
            shard_size=reply.spec.shard_size,
            shuffle=reply.spec.shuffle,
            seed=reply.spec.seed,
            num_shards=reply.num_shards,
            registered_at=datetime.datetime.fromtimestamp(reply.registered_at_unix_ms / 1000, tz=datetime.timezone.utc),
            created=reply.created,
        )

    def get_shard_assignment(self, dataset: str, worker_id: str, epoch: int, *, page_size: int = 0) -> ShardAssignment:
        """This worker's shards of ``epoch`` that are not done yet (the coordinator assigns them at the first ask).

        The coordinator answers in pages of at most ``page_size`` shards (0: its default, 16,384); this gathers them
        all, starting over when membership changed between two pages (the later ones belong to another assignment).
        """
        for _ in range(8):
            request = pb.GetShardAssignmentRequest(
                dataset=dataset, worker_id=worker_id, epoch=epoch, max_shards=page_size
            )
            first = self._call(self._stub.GetShardAssignment, request, worker_id=worker_id)
            replies = [first]
            while replies[-1].next_page_token and replies[-1].membership_epoch == first.membership_epoch:
                request.page_token = replies[-1].next_page_token
                replies.append(self._call(self._stub.GetShardAssignment, request, worker_id=worker_id))
            if replies[-1].membership_epoch == first.membership_epoch:
                return shard_assignment(first, pages=replies[1:])
        raise CoordinatorUnavailable(
            f"the assignment of {dataset} epoch {epoch} kept changing while it was read (membership changes "
            "between pages); ask again once the task's membership settles"
        )

    def report_shard_progress(
        self, dataset: str, worker_id: str, *, epoch: int, membership_epoch: int, shard_id: int, consumed: int
    ) -> ShardProgress:
        """Commits a shard's cursor: 0 claims the shard, its length completes it. ``membership_epoch`` is the
        assignment's: a report from before the shard moved is refused (``ShardMoved`` or ``StaleEpoch``)."""
        request = pb.ReportShardProgressRequest(
            dataset=dataset,
            worker_id=worker_id,
            epoch=epoch,
            membership_epoch=membership_epoch,
            shard_id=shard_id,
            consumed=consumed,
        )
        return ShardProgress.from_proto(self._call(self._stub.ReportShardProgress, request, worker_id=worker_id))

    # MARK: barriers

    def barrier_sync(
        self,
        name: str,
        worker_id: str,
        *,
        membership_epoch: int,
        expected: int = 0,
        timeout: float | None = None,
        payload: pb.ReducePayload | None = None,
    ) -> BarrierResult:
        """Arrives at a barrier and waits for its release (``timeout`` seconds, default the coordinator's 300).

        The calls of every client of this process to the same coordinator share one stream (see ``barrier_hub``).
        """
        request = pb.BarrierSyncRequest(
            name=name,
            worker_id=worker_id,
            membership_epoch=membership_epoch,
            expected=expected,
            timeout_ms=0 if timeout is None else max(1, round(timeout * 1000)),
            payload=payload,
            # In the message: the process's barrier stream carries the calls of all its workers.
            worker_secret=self._secrets.get(worker_id, ""),
        )
        # The coordinator answers at the barrier's own timeout; the call's deadline only guards against a lost reply.
        deadline = (300.0 if timeout is None else timeout) + 30.0
        if request.ByteSize() > MAX_CALL_BYTES:
            # A large payload gains nothing from sharing a message, and may be over the coordinator's limit: it goes
            # alone, so that its error is its own.
            return BarrierResult.from_proto(self._call(self._stub.BarrierSync, request, timeout=deadline))
        return BarrierResult.from_proto(self._barrier_hub().call(request, deadline))

    # MARK: checkpoints

    def save_checkpoint(
        self,
        worker_id: str,
        *,
        membership_epoch: int,
        step: int,
        epoch: int = 0,
        metrics: Mapping[str, float] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CheckpointTicket:
        """Opens (or joins) the task's checkpoint of ``step`` and learns where this rank writes its part."""
        request = pb.SaveCheckpointRequest(
            worker_id=worker_id,
            membership_epoch=membership_epoch,
            step=step,
            epoch=epoch,
            metrics={name: float(value) for name, value in (metrics or {}).items()},
            metadata=dict(metadata or {}),
        )
        return CheckpointTicket.from_proto(self._call(self._stub.SaveCheckpoint, request, worker_id=worker_id))

    def report_checkpoint_part(
        self,
        worker_id: str,
        checkpoint_id: str,
        *,
        size_bytes: int = 0,
        sha256: str = "",
        failure: str = "",
        write_seconds: float = 0.0,
        wait: bool = False,
        timeout: float | None = None,
    ) -> CheckpointReport:
        """Reports a written part (or, with ``failure``, why it could not be written: the checkpoint aborts at once).

        With ``wait`` the reply comes when the checkpoint commits or aborts; ``timeout`` bounds the call (default the
        client's timeout; pass the checkpoint's deadline plus a margin when waiting).
        """
        request = pb.ReportCheckpointPartRequest(
            worker_id=worker_id,
            checkpoint_id=checkpoint_id,
            size_bytes=size_bytes,
            sha256=sha256,
            failure=failure,
            write_seconds=write_seconds,
            wait=wait,
        )
        reply = self._call(self._stub.ReportCheckpointPart, request, timeout=timeout, worker_id=worker_id)
        return CheckpointReport.from_proto(reply)

    def load_checkpoint(
        self, worker_id: str = "", *, task_id: str = "", step: int | None = None, restore_data: bool = False
    ) -> CheckpointLookup:
        """The manifest of a committed checkpoint: of ``step``, or the latest. Raises ``NotFound`` when there is none.

        ``task_id`` defaults to the task of ``worker_id``; ``restore_data`` also resets the task's data ledgers to the
        checkpoint's position (idempotent per checkpoint and membership epoch, so every rank may ask).
        """
        request = pb.LoadCheckpointRequest(task_id=task_id, worker_id=worker_id, restore_data=restore_data)
        if step is None:
            request.latest = True
        else:
            request.step = step
        reply = self._call(self._stub.LoadCheckpoint, request, worker_id=worker_id)
        return CheckpointLookup(CheckpointManifest.from_proto(reply.manifest), reply.data_restored)

    # MARK: worker secrets

    def worker_secret(self, worker_id: str) -> str:
        """The secret of a worker registered through this client ("" when none was): hand it to another client with
        :meth:`adopt_worker_secret` to let that one act as the worker too."""
        return self._secrets.get(worker_id, "")

    def adopt_worker_secret(self, worker_id: str, secret: str) -> None:
        """Acts as ``worker_id`` with the ``secret`` its registration returned (through another client or process)."""
        self._secrets[worker_id] = secret

    def _secret_metadata(self, worker_id: str) -> tuple[tuple[str, str | bytes], ...] | None:
        secret = self._secrets.get(worker_id, "") if worker_id else ""
        return (("dtr-worker-secret", secret),) if secret else None

    # MARK: plumbing

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable[RequestT, ResponseT],
        request: RequestT,
        *,
        timeout: float | None = None,
        worker_id: str = "",
    ) -> ResponseT:
        """One unary call, within ``timeout`` seconds (default the client's), retried while it is rate-limited; a call
        naming ``worker_id`` carries that worker's secret.

        The coordinator's --grpc-rate-limit refuses a call with RESOURCE_EXHAUSTED and ``retry-after-ms`` in the
        trailing metadata; the call then waits that long (plus a little jitter, so that the workers sharing one IP's
        budget do not all come back at once) and tries again, as long as the next try still fits in ``timeout``. The
        retry is safe for every call, idempotent or not: the rate limiter refuses a call before its handler runs, so
        the refused try changed nothing. RESOURCE_EXHAUSTED without ``retry-after-ms`` (a message over the size limit,
        a full registry) is final and raised at once.
        """
        budget = self.timeout if timeout is None else timeout
        if budget is None:  # no deadline at all
            budget = math.inf
        started = time.monotonic()
        tries = 0
        while True:
            tries += 1
            remaining = budget - (time.monotonic() - started)
            try:
                return method(
                    request,
                    timeout=None if math.isinf(remaining) else max(remaining, 0.001),
                    metadata=self._secret_metadata(worker_id),
                )
            except grpc.RpcError as error:
                wait = rate_limit_wait(error)
                if wait is None:
                    raise self.translate(error) from None
                elapsed = time.monotonic() - started
                if elapsed + wait >= budget:
                    details = error.details() if isinstance(error, grpc.Call) else str(error)
                    raise ResourceExhausted(
                        f"{details}; still refused after {tries} {'try' if tries == 1 else 'tries'} in {elapsed:.1f} s "
                        f"(the call's timeout is {budget:g} s): make fewer calls per second from this machine, or "
                        "raise the coordinator's --grpc-rate-limit",
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                    ) from None
                time.sleep(wait)

    def translate(self, error: grpc.RpcError) -> DtrError:
        """The typed error for a failed call of this client. When the coordinator did not answer at all, a TLS
        mismatch (a TLS coordinator reached in plaintext, a CA that did not sign its certificate) looks the same to
        gRPC: a probe of the address then says which it is."""
        typed = translate(error, self.address)
        if isinstance(typed, CoordinatorUnavailable) and not typed.reason:
            problem = tls_check.diagnose(self.address, self._roots)
            if problem is not None:
                details = error.details() if isinstance(error, grpc.Call) else str(error)
                return CoordinatorUnavailable(f"{problem} (gRPC: {details})", typed.code, typed.reason)
        return typed

    def _barrier_hub(self) -> BarrierHub:
        """The process's hub for this coordinator, acquired at the first barrier (again in a forked child)."""
        with self._hub_lock:
            if self._hub is None or self._hub.pid != os.getpid():
                address, token, roots = self._hub_key
                self._hub = HUBS.acquire(self._hub_key, lambda: _open_channel(address, token, roots), address)
            return self._hub

    def close(self) -> None:
        with self._hub_lock:
            hub, self._hub = self._hub, None
        if hub is not None and hub.pid == os.getpid():
            HUBS.release(self._hub_key)
        self._channel.close()

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _open_channel(address: str, token: str | None, roots: bytes | None) -> grpc.Channel:
    """A channel to the coordinator: TLS when ``roots`` (the CA certificates) are given; ``token`` on every call."""
    options = [
        # Reconnect within a second of a coordinator restart (grpc's default backoff grows to 2 minutes),
        # well inside the grace a restarted coordinator gives its workers (one dead timeout, 5 s by default).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
        # Barrier payloads: the coordinator accepts 64 MiB per participant by default.
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    if roots is not None:
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=roots), options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    return grpc.intercept_channel(channel, _BearerToken(token)) if token else channel


def heartbeat_request(
    worker_id: str, membership_epoch: int, step: int, metrics: Mapping[str, float] | None
) -> pb.HeartbeatRequest:
    return pb.HeartbeatRequest(
        worker_id=worker_id,
        membership_epoch=membership_epoch,
        step=step,
        metrics={key: float(value) for key, value in (metrics or {}).items()},
    )


class _BearerToken(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to every call's metadata."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(details, (*(details.metadata or ()), self._header))

    # grpc's stubs type the continuations' results with classes they only declare for type checking (_CallFuture,
    # _CallIterator): the annotations name them, nothing at run time does.
    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, In], grpc._CallFuture[Out]],
        client_call_details: grpc.ClientCallDetails,
        request: In,
    ) -> grpc._CallFuture[Out]:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, In], grpc._CallIterator[Out]],
        client_call_details: grpc.ClientCallDetails,
        request: In,
    ) -> grpc._CallIterator[Out]:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Iterator[In]], grpc._CallFuture[Out]],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[In],
    ) -> grpc._CallFuture[Out]:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Iterator[In]], grpc._CallIterator[Out]],
        client_call_details: grpc.ClientCallDetails,
        request_iterator: Iterator[In],
    ) -> grpc._CallIterator[Out]:
        return continuation(self._details(client_call_details), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    """A call's details with other metadata."""

    def __init__(self, details: grpc.ClientCallDetails, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = getattr(details, "compression", None)

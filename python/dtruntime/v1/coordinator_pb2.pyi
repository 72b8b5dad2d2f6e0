from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Command(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMAND_UNSPECIFIED: _ClassVar[Command]
    COMMAND_CONTINUE: _ClassVar[Command]
    COMMAND_STOP: _ClassVar[Command]
    COMMAND_REJOIN: _ClassVar[Command]

class WorkerStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_STATUS_UNSPECIFIED: _ClassVar[WorkerStatus]
    WORKER_STATUS_HEALTHY: _ClassVar[WorkerStatus]
    WORKER_STATUS_SUSPECT: _ClassVar[WorkerStatus]
    WORKER_STATUS_DEAD: _ClassVar[WorkerStatus]
    WORKER_STATUS_LEFT: _ClassVar[WorkerStatus]

class SessionEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_EVENT_KIND_UNSPECIFIED: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_HEARTBEAT_ACK: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_PUSH: _ClassVar[SessionEventKind]

class CheckpointStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECKPOINT_STATUS_UNSPECIFIED: _ClassVar[CheckpointStatus]
    CHECKPOINT_STATUS_PENDING: _ClassVar[CheckpointStatus]
    CHECKPOINT_STATUS_COMMITTED: _ClassVar[CheckpointStatus]
    CHECKPOINT_STATUS_ABORTED: _ClassVar[CheckpointStatus]
    CHECKPOINT_STATUS_DELETED: _ClassVar[CheckpointStatus]

class ReduceOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REDUCE_OP_UNSPECIFIED: _ClassVar[ReduceOp]
    REDUCE_OP_SUM: _ClassVar[ReduceOp]
    REDUCE_OP_MEAN: _ClassVar[ReduceOp]
    REDUCE_OP_MAX: _ClassVar[ReduceOp]
    REDUCE_OP_MIN: _ClassVar[ReduceOp]

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_FLOAT64: _ClassVar[DType]
COMMAND_UNSPECIFIED: Command
COMMAND_CONTINUE: Command
COMMAND_STOP: Command
COMMAND_REJOIN: Command
WORKER_STATUS_UNSPECIFIED: WorkerStatus
WORKER_STATUS_HEALTHY: WorkerStatus
WORKER_STATUS_SUSPECT: WorkerStatus
WORKER_STATUS_DEAD: WorkerStatus
WORKER_STATUS_LEFT: WorkerStatus
SESSION_EVENT_KIND_UNSPECIFIED: SessionEventKind
SESSION_EVENT_KIND_HEARTBEAT_ACK: SessionEventKind
SESSION_EVENT_KIND_PUSH: SessionEventKind
CHECKPOINT_STATUS_UNSPECIFIED: CheckpointStatus
CHECKPOINT_STATUS_PENDING: CheckpointStatus
CHECKPOINT_STATUS_COMMITTED: CheckpointStatus
CHECKPOINT_STATUS_ABORTED: CheckpointStatus
CHECKPOINT_STATUS_DELETED: CheckpointStatus
REDUCE_OP_UNSPECIFIED: ReduceOp
REDUCE_OP_SUM: ReduceOp
REDUCE_OP_MEAN: ReduceOp
REDUCE_OP_MAX: ReduceOp
REDUCE_OP_MIN: ReduceOp
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT64: DType

class MembershipView(_message.Message):
    __slots__ = ("task_id", "rank", "world_size", "membership_epoch", "command", "reason", "status")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    rank: int
    world_size: int
    membership_epoch: int
    command: Command
    reason: str
    status: WorkerStatus
    def __init__(self, task_id: _Optional[str] = ..., rank: _Optional[int] = ..., world_size: _Optional[int] = ..., membership_epoch: _Optional[int] = ..., command: _Optional[_Union[Command, str]] = ..., reason: _Optional[str] = ..., status: _Optional[_Union[WorkerStatus, str]] = ...) -> None: ...

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "host", "port", "gpu_count", "labels", "task_id", "incarnation", "task_min_world_size", "task_max_world_size")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    GPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    TASK_MIN_WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    TASK_MAX_WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    host: str
    port: int
    gpu_count: int
    labels: _containers.ScalarMap[str, str]
    task_id: str
    incarnation: str
    task_min_world_size: int
    task_max_world_size: int
    def __init__(self, worker_id: _Optional[str] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., gpu_count: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., task_id: _Optional[str] = ..., incarnation: _Optional[str] = ..., task_min_world_size: _Optional[int] = ..., task_max_world_size: _Optional[int] = ...) -> None: ...

class TaskSettings(_message.Message):
    __slots__ = ("task_id", "min_world_size", "max_world_size", "dataset", "epochs", "config_json")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    min_world_size: int
    max_world_size: int
    dataset: str
    epochs: int
    config_json: str
    def __init__(self, task_id: _Optional[str] = ..., min_world_size: _Optional[int] = ..., max_world_size: _Optional[int] = ..., dataset: _Optional[str] = ..., epochs: _Optional[int] = ..., config_json: _Optional[str] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("view", "heartbeat_interval_ms", "suspect_after_ms", "dead_after_ms", "coordinator_version", "task", "worker_secret")
    VIEW_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SUSPECT_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    DEAD_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    WORKER_SECRET_FIELD_NUMBER: _ClassVar[int]
    view: MembershipView
    heartbeat_interval_ms: int
    suspect_after_ms: int
    dead_after_ms: int
    coordinator_version: str
    task: TaskSettings
    worker_secret: str
    def __init__(self, view: _Optional[_Union[MembershipView, _Mapping]] = ..., heartbeat_interval_ms: _Optional[int] = ..., suspect_after_ms: _Optional[int] = ..., dead_after_ms: _Optional[int] = ..., coordinator_version: _Optional[str] = ..., task: _Optional[_Union[TaskSettings, _Mapping]] = ..., worker_secret: _Optional[str] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "membership_epoch", "step", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    membership_epoch: int
    step: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, worker_id: _Optional[str] = ..., membership_epoch: _Optional[int] = ..., step: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("view",)
    VIEW_FIELD_NUMBER: _ClassVar[int]
    view: MembershipView
    def __init__(self, view: _Optional[_Union[MembershipView, _Mapping]] = ...) -> None: ...

class DeregisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "reason", "failed")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    reason: str
    failed: bool
    def __init__(self, worker_id: _Optional[str] = ..., reason: _Optional[str] = ..., failed: _Optional[bool] = ...) -> None: ...

class DeregisterWorkerResponse(_message.Message):
    __slots__ = ("membership_epoch",)
    MEMBERSHIP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    membership_epoch: int
    def __init__(self, membership_epoch: _Optional[int] = ...) -> None: ...

class SessionRequest(_message.Message):
    __slots__ = ("heartbeat",)
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    heartbeat: HeartbeatRequest
    def __init__(self, heartbeat: _Optional[_Union[HeartbeatRequest, _Mapping]] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("kind", "view")
    KIND_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    kind: SessionEventKind
    view: MembershipView
    def __init__(self, kind: _Optional[_Union[SessionEventKind, str]] = ..., view: _Optional[_Union[MembershipView, _Mapping]] = ...) -> None: ...

class DatasetSpec(_message.Message):
    __slots__ = ("name", "total_samples", "shard_size", "shuffle", "seed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SHARD_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHUFFLE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    name: str
    total_samples: int
    shard_size: int
    shuffle: bool
    seed: int
    def __init__(self, name: _Optional[str] = ..., total_samples: _Optional[int] = ..., shard_size: _Optional[int] = ..., shuffle: _Optional[bool] = ..., seed: _Optional[int] = ...) -> None: ...

class RegisterDatasetRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: DatasetSpec
    def __init__(self, spec: _Optional[_Union[DatasetSpec, _Mapping]] = ...) -> None: ...

class RegisterDatasetResponse(_message.Message):
    __slots__ = ("spec", "num_shards", "registered_at_unix_ms", "created")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    NUM_SHARDS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    spec: DatasetSpec
    num_shards: int
    registered_at_unix_ms: int
    created: bool
    def __init__(self, spec: _Optional[_Union[DatasetSpec, _Mapping]] = ..., num_shards: _Optional[int] = ..., registered_at_unix_ms: _Optional[int] = ..., created: _Optional[bool] = ...) -> None: ...

class GetShardAssignmentRequest(_message.Message):
    __slots__ = ("dataset", "worker_id", "epoch", "membership_epoch")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    worker_id: str
    epoch: int
    membership_epoch: int
    def __init__(self, dataset: _Optional[str] = ..., worker_id: _Optional[str] = ..., epoch: _Optional[int] = ..., membership_epoch: _Optional[int] = ...) -> None: ...

class Shard(_message.Message):
    __slots__ = ("shard_id", "start", "end", "sample_seed", "consumed")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_SEED_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    shard_id: int
    start: int
    end: int
    sample_seed: int
    consumed: int
    def __init__(self, shard_id: _Optional[int] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., sample_seed: _Optional[int] = ..., consumed: _Optional[int] = ...) -> None: ...

class GetShardAssignmentResponse(_message.Message):
    __slots__ = ("dataset", "epoch", "membership_epoch", "shards", "total_shards", "done_shards", "shuffle")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SHARDS_FIELD_NUMBER: _ClassVar[int]
    DONE_SHARDS_FIELD_NUMBER: _ClassVar[int]
    SHUFFLE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    epoch: int
    membership_epoch: int
    shards: _containers.RepeatedCompositeFieldContainer[Shard]
    total_shards: int
    done_shards: int
    shuffle: bool
    def __init__(self, dataset: _Optional[str] = ..., epoch: _Optional[int] = ..., membership_epoch: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[Shard, _Mapping]]] = ..., total_shards: _Optional[int] = ..., done_shards: _Optional[int] = ..., shuffle: _Optional[bool] = ...) -> None: ...

class ReportShardProgressRequest(_message.Message):
    __slots__ = ("dataset", "worker_id", "epoch", "membership_epoch", "shard_id", "consumed")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    worker_id: str
    epoch: int
    membership_epoch: int
    shard_id: int
    consumed: int
    def __init__(self, dataset: _Optional[str] = ..., worker_id: _Optional[str] = ..., epoch: _Optional[int] = ..., membership_epoch: _Optional[int] = ..., shard_id: _Optional[int] = ..., consumed: _Optional[int] = ...) -> None: ...

class ReportShardProgressResponse(_message.Message):
    __slots__ = ("consumed", "done", "done_shards", "total_shards")
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    DONE_SHARDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SHARDS_FIELD_NUMBER: _ClassVar[int]
    consumed: int
    done: bool
    done_shards: int
    total_shards: int
    def __init__(self, consumed: _Optional[int] = ..., done: _Optional[bool] = ..., done_shards: _Optional[int] = ..., total_shards: _Optional[int] = ...) -> None: ...

class StorageLocation(_message.Message):
    __slots__ = ("uri", "endpoint", "region")
    URI_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    uri: str
    endpoint: str
    region: str
    def __init__(self, uri: _Optional[str] = ..., endpoint: _Optional[str] = ..., region: _Optional[str] = ...) -> None: ...

class SaveCheckpointRequest(_message.Message):
    __slots__ = ("worker_id", "membership_epoch", "step", "epoch", "metrics", "metadata")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    membership_epoch: int
    step: int
    epoch: int
    metrics: _containers.ScalarMap[str, float]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, worker_id: _Optional[str] = ..., membership_epoch: _Optional[int] = ..., step: _Optional[int] = ..., epoch: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SaveCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint_id", "rank", "world_size", "store", "object_key", "deadline_unix_ms")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    rank: int
    world_size: int
    store: StorageLocation
    object_key: str
    deadline_unix_ms: int
    def __init__(self, checkpoint_id: _Optional[str] = ..., rank: _Optional[int] = ..., world_size: _Optional[int] = ..., store: _Optional[_Union[StorageLocation, _Mapping]] = ..., object_key: _Optional[str] = ..., deadline_unix_ms: _Optional[int] = ...) -> None: ...

class ReportCheckpointPartRequest(_message.Message):
    __slots__ = ("worker_id", "checkpoint_id", "size_bytes", "sha256", "failure", "write_seconds", "wait")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    WRITE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    checkpoint_id: str
    size_bytes: int
    sha256: str
    failure: str
    write_seconds: float
    wait: bool
    def __init__(self, worker_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., failure: _Optional[str] = ..., write_seconds: _Optional[float] = ..., wait: _Optional[bool] = ...) -> None: ...

class ReportCheckpointPartResponse(_message.Message):
    __slots__ = ("checkpoint_id", "status", "reported_parts", "world_size", "manifest", "abort_reason")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REPORTED_PARTS_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    ABORT_REASON_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    status: CheckpointStatus
    reported_parts: int
    world_size: int
    manifest: CheckpointManifest
    abort_reason: str
    def __init__(self, checkpoint_id: _Optional[str] = ..., status: _Optional[_Union[CheckpointStatus, str]] = ..., reported_parts: _Optional[int] = ..., world_size: _Optional[int] = ..., manifest: _Optional[_Union[CheckpointManifest, _Mapping]] = ..., abort_reason: _Optional[str] = ...) -> None: ...

class CheckpointPart(_message.Message):
    __slots__ = ("rank", "object_key", "size_bytes", "sha256")
    RANK_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    rank: int
    object_key: str
    size_bytes: int
    sha256: str
    def __init__(self, rank: _Optional[int] = ..., object_key: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class ShardCursor(_message.Message):
    __slots__ = ("shard_id", "consumed")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    CONSUMED_FIELD_NUMBER: _ClassVar[int]
    shard_id: int
    consumed: int
    def __init__(self, shard_id: _Optional[int] = ..., consumed: _Optional[int] = ...) -> None: ...

class DatasetPosition(_message.Message):
    __slots__ = ("dataset", "epoch", "done_shard_ids", "partial")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    DONE_SHARD_IDS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    epoch: int
    done_shard_ids: _containers.RepeatedScalarFieldContainer[int]
    partial: _containers.RepeatedCompositeFieldContainer[ShardCursor]
    def __init__(self, dataset: _Optional[str] = ..., epoch: _Optional[int] = ..., done_shard_ids: _Optional[_Iterable[int]] = ..., partial: _Optional[_Iterable[_Union[ShardCursor, _Mapping]]] = ...) -> None: ...

class CheckpointManifest(_message.Message):
    __slots__ = ("checkpoint_id", "task_id", "step", "epoch", "world_size", "parts", "metrics", "metadata", "datasets", "created_at_unix_ms", "committed_at_unix_ms", "store", "manifest_key")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_KEY_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    task_id: str
    step: int
    epoch: int
    world_size: int
    parts: _containers.RepeatedCompositeFieldContainer[CheckpointPart]
    metrics: _containers.ScalarMap[str, float]
    metadata: _containers.ScalarMap[str, str]
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetPosition]
    created_at_unix_ms: int
    committed_at_unix_ms: int
    store: StorageLocation
    manifest_key: str
    def __init__(self, checkpoint_id: _Optional[str] = ..., task_id: _Optional[str] = ..., step: _Optional[int] = ..., epoch: _Optional[int] = ..., world_size: _Optional[int] = ..., parts: _Optional[_Iterable[_Union[CheckpointPart, _Mapping]]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., datasets: _Optional[_Iterable[_Union[DatasetPosition, _Mapping]]] = ..., created_at_unix_ms: _Optional[int] = ..., committed_at_unix_ms: _Optional[int] = ..., store: _Optional[_Union[StorageLocation, _Mapping]] = ..., manifest_key: _Optional[str] = ...) -> None: ...

class LoadCheckpointRequest(_message.Message):
    __slots__ = ("task_id", "worker_id", "step", "latest", "restore_data")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    RESTORE_DATA_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    worker_id: str
    step: int
    latest: bool
    restore_data: bool
    def __init__(self, task_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., step: _Optional[int] = ..., latest: _Optional[bool] = ..., restore_data: _Optional[bool] = ...) -> None: ...

class LoadCheckpointResponse(_message.Message):
    __slots__ = ("manifest", "data_restored")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    DATA_RESTORED_FIELD_NUMBER: _ClassVar[int]
    manifest: CheckpointManifest
    data_restored: bool
    def __init__(self, manifest: _Optional[_Union[CheckpointManifest, _Mapping]] = ..., data_restored: _Optional[bool] = ...) -> None: ...

class ReducePayload(_message.Message):
    __slots__ = ("op", "dtype", "data")
    OP_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    op: ReduceOp
    dtype: DType
    data: bytes
    def __init__(self, op: _Optional[_Union[ReduceOp, str]] = ..., dtype: _Optional[_Union[DType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Participant(_message.Message):
    __slots__ = ("rank", "worker_id")
    RANK_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    rank: int
    worker_id: str
    def __init__(self, rank: _Optional[int] = ..., worker_id: _Optional[str] = ...) -> None: ...

class BarrierSyncRequest(_message.Message):
    __slots__ = ("name", "worker_id", "membership_epoch", "expected", "timeout_ms", "payload", "worker_secret")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WORKER_SECRET_FIELD_NUMBER: _ClassVar[int]
    name: str
    worker_id: str
    membership_epoch: int
    expected: int
    timeout_ms: int
    payload: ReducePayload
    worker_secret: str
    def __init__(self, name: _Optional[str] = ..., worker_id: _Optional[str] = ..., membership_epoch: _Optional[int] = ..., expected: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., payload: _Optional[_Union[ReducePayload, _Mapping]] = ..., worker_secret: _Optional[str] = ...) -> None: ...

class BarrierSyncResponse(_message.Message):
    __slots__ = ("generation", "participants", "result", "participant_count", "membership_epoch")
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANTS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMBERSHIP_EPOCH_FIELD_NUMBER: _ClassVar[int]
    generation: int
    participants: _containers.RepeatedCompositeFieldContainer[Participant]
    result: ReducePayload
    participant_count: int
    membership_epoch: int
    def __init__(self, generation: _Optional[int] = ..., participants: _Optional[_Iterable[_Union[Participant, _Mapping]]] = ..., result: _Optional[_Union[ReducePayload, _Mapping]] = ..., participant_count: _Optional[int] = ..., membership_epoch: _Optional[int] = ...) -> None: ...

class BarrierStreamRequest(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[BarrierStreamCall]
    def __init__(self, calls: _Optional[_Iterable[_Union[BarrierStreamCall, _Mapping]]] = ...) -> None: ...

class BarrierStreamCall(_message.Message):
    __slots__ = ("call_id", "arrival")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    ARRIVAL_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    arrival: BarrierSyncRequest
    def __init__(self, call_id: _Optional[int] = ..., arrival: _Optional[_Union[BarrierSyncRequest, _Mapping]] = ...) -> None: ...

class BarrierStreamReply(_message.Message):
    __slots__ = ("call_ids", "response", "code", "message", "missing", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CALL_IDS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    call_ids: _containers.RepeatedScalarFieldContainer[int]
    response: BarrierSyncResponse
    code: int
    message: str
    missing: _containers.RepeatedCompositeFieldContainer[Participant]
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, call_ids: _Optional[_Iterable[int]] = ..., response: _Optional[_Union[BarrierSyncResponse, _Mapping]] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., missing: _Optional[_Iterable[_Union[Participant, _Mapping]]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

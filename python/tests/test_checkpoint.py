"""Standalone checkpoints: bit-exact round trips, background saves, integrity, atomicity, retention, S3, bad input.

Everything runs against real files in a temporary directory and a real S3 server (SeaweedFS, started once per
session by the ``s3_server`` fixture); no coordinator is involved (test_checkpoint_distributed.py covers that side).
"""

from __future__ import annotations

import dataclasses
import datetime
import fractions
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dtruntime import (
    CheckpointCorrupted,
    CheckpointError,
    CheckpointManager,
    CheckpointManifest,
    CheckpointNotFound,
    CheckpointStatus,
    CheckpointStorageError,
    S3Options,
    StoreLocation,
    expired_checkpoints,
)
from dtruntime.checkpoint_format import ALIGNMENT, MAGIC, EncodedState

# MARK: helpers


@dataclasses.dataclass
class Schedule:
    """A user-defined class: checkpoints store it with pickle."""

    warmup: int
    peaks: list[float]


def assert_same(actual: Any, expected: Any, path: str = "state") -> None:
    """Equal, type for type; arrays bit for bit (dtype with byte order, shape, raw bytes: NaN payloads included)."""
    assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
    if isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype and actual.dtype.str == expected.dtype.str, path
        assert actual.shape == expected.shape, path
        assert actual.tobytes() == expected.tobytes(), f"{path}: bytes differ"
    elif isinstance(expected, np.generic):
        assert actual.dtype.str == expected.dtype.str and actual.tobytes() == expected.tobytes(), path
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), path
        for index, (left, right) in enumerate(zip(actual, expected, strict=True)):
            assert_same(left, right, f"{path}[{index}]")
    elif isinstance(expected, float):
        assert struct.pack(">d", actual) == struct.pack(">d", expected), f"{path}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def nan_with_payload(bits: int, dtype: str) -> np.ndarray:
    return np.array([bits], dtype={"<f4": "<u4", "<f8": "<u8", "<f2": "<u2"}[dtype]).view(dtype)


def every_kind_of_array() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    base = rng.standard_normal((6, 8))
    arrays = {
        dtype: rng.integers(-100, 100, size=(3, 5)).astype(dtype)
        for dtype in ["<f2", "<f4", "<f8", "<i1", "<u1", "<i2", "<i4", "<i8", "<u8", "|b1", "<c8", "<c16"]
    }
    arrays |= {
        "longdouble": np.arange(5, dtype=np.longdouble) / 3,
        "big_endian_f8": base.astype(">f8"),
        "big_endian_i4": np.arange(10, dtype=">i4"),
        "big_endian_c16": (base + 1j * base).astype(">c16"),
        "zero_d": np.array(3.25, dtype=np.float32),
        "zero_d_complex": np.array(1 - 2j),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "empty_3d": np.zeros((2, 0, 3), dtype=np.int16),
        "strided": base[::2, 1::3],
        "transposed": base.T,
        "fortran": np.asfortranarray(rng.standard_normal((4, 5, 3))),
        "negative_stride": np.arange(20, dtype=np.int64)[::-1],
        "broadcast": np.broadcast_to(np.arange(4.0), (3, 4)),
        "nan_payloads_f4": np.concatenate(
            [nan_with_payload(bits, "<f4") for bits in (0x7FC00001, 0xFFA00000, 0x7F800001, 0x7F800000)]
        ),
        "nan_payloads_f2": nan_with_payload(0x7E01, "<f2"),
        "negative_zero": np.array([-0.0, 0.0]),
        "datetime": np.array(["2026-11-29T10:00", "1970-01-01T00:00"], dtype="datetime64[s]"),
        "unicode": np.array(["ä", "checkpoint", ""], dtype="<U10"),
        "structured": np.array([(1, 2.5, b"ab"), (3, -1.0, b"cd")], dtype=[("a", ">i4"), ("b", "<f8"), ("c", "S2")]),
        "nested_structured": np.zeros(2, dtype=[("pos", "<f4", (3,)), ("inner", [("id", "<u2"), ("flag", "?")])]),
    }
    return arrays


@pytest.fixture
def manager(tmp_path: Path) -> Any:
    with CheckpointManager(tmp_path / "ckpt") as checkpoints:
        yield checkpoints


def part_file(tmp_path: Path, checkpoint_id: str) -> Path:
    return tmp_path / "ckpt" / checkpoint_id / "rank-00000.part"


class Gate:
    """Holds every part write of a manager until opened, to observe saves in flight."""

    def __init__(self, checkpoints: CheckpointManager) -> None:
        self.opened = threading.Event()
        self.entered = threading.Semaphore(0)
        store = checkpoints._store
        assert store is not None
        original = store.write_part

        def gated(key: str, encoded: EncodedState) -> Any:
            self.entered.release()
            assert self.opened.wait(10), "gate never opened"
            return original(key, encoded)

        store.write_part = gated  # type: ignore[method-assign]


# MARK: round trips


def test_reference_call_saves_to_checkpoints_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model_state = {"layer.weight": np.ones((2, 2), dtype=np.float32)}
    with CheckpointManager("./checkpoints") as checkpoints:
        saved = checkpoints.save(model_state, step=1000, epoch=1)
    assert (saved.checkpoint_id, saved.step, saved.epoch, saved.status) == (
        "local/step-000000001000-a1",
        1000,
        1,
        CheckpointStatus.COMMITTED,
    )
    folder = tmp_path / "checkpoints" / "local" / "step-000000001000-a1"
    assert sorted(os.listdir(folder)) == ["manifest.json", "rank-00000.part"]
    assert saved.path == str(folder / "rank-00000.part")
    assert_same(CheckpointManager("checkpoints").load(), model_state)


def test_numpy_arrays_round_trip_bit_exactly(manager):
    arrays = every_kind_of_array()
    manager.save(arrays, step=1)
    loaded = manager.load()
    assert_same(loaded, {name: np.array(array, order="C") for name, array in arrays.items()})
    assert all(array.flags.aligned for array in loaded.values())
    assert loaded["nan_payloads_f4"].view("<u4").tolist() == [0x7FC00001, 0xFFA00000, 0x7F800001, 0x7F800000]


def test_nested_containers_scalars_and_pickled_objects_round_trip(manager):
    metadata = OrderedDict([("", {"version": 1}), ("layer", {"version": 2})])
    ordered = OrderedDict([("b", np.arange(3)), ("a", np.float32(1.5))])
    ordered._metadata = metadata  # type: ignore[attr-defined]  # what torch's state_dict() carries
    state = {
        "model": ordered,
        "optimizer": {"state": {0: {"step": 10, "exp_avg": np.ones(4)}, 1: {}}, "param_groups": [{"lr": 1e-3}]},
        "scalars": [0, -(2**100), 2**64 + 1, 1.5, -0.0, float("inf"), float("-inf"), float("nan"), True, False, None],
        "nan_payload": struct.unpack(">d", bytes.fromhex("7ff8000000000abc"))[0],
        "text": ["", "ünïcode ✓", "lone \udc80 surrogate", "x" * 10_000],
        "binary": [b"", b"\x00\xff" * 1000, bytearray(b"mutable")],
        "tuple_keys": {(1, "a"): "t", 2.5: "f", None: "n", b"raw": "b", True: "bool"},
        "numpy_scalars": [np.int64(-5), np.uint8(200), np.float16(0.1), np.complex64(1j), np.bool_(True)],
        "pickled": [Schedule(100, [0.1, 0.01]), {1, 2, 3}, frozenset("ab"), fractions.Fraction(1, 3), range(5)],
        "empty": [{}, [], ()],
    }
    manager.save(state, step=7)
    loaded = manager.load(step=7)
    assert_same(loaded, state)
    assert loaded["model"]._metadata == metadata


def test_an_array_referenced_twice_is_stored_once_and_loads_shared(manager):
    weight = np.random.default_rng(1).standard_normal(1 << 16)
    saved = manager.save({"embedding": weight, "lm_head": weight}, step=1)
    assert saved.size_bytes < weight.nbytes * 1.1
    loaded = manager.load()
    assert np.shares_memory(loaded["embedding"], loaded["lm_head"])
    assert_same(loaded["lm_head"], weight)


def test_part_layout_matches_the_documented_format(manager, tmp_path):
    saved = manager.save({"a": np.arange(5, dtype=np.int16), "b": b"xyz", "c": 2.5}, step=3)
    raw = part_file(tmp_path, saved.checkpoint_id).read_bytes()
    assert (len(raw), hashlib.sha256(raw).hexdigest()) == (saved.size_bytes, saved.sha256)
    assert raw[:8] == MAGIC
    (length,) = struct.unpack("<Q", raw[8:16])
    assert (16 + length) % ALIGNMENT == 0
    header = json.loads(raw[16 : 16 + length])
    assert header["format"] == "dtruntime-checkpoint" and header["version"] == 1
    assert 16 + length + header["data_bytes"] == len(raw)
    items = dict(header["tree"]["items"])
    assert items["a"] == {"t": "ndarray", "dtype": "<i2", "shape": [5], "offset": 0, "nbytes": 10}
    assert items["b"] == {"t": "bytes", "offset": 64, "nbytes": 3}
    assert items["c"] == {"t": "float", "v": 2.5}
    data = raw[16 + length :]
    assert np.frombuffer(data[:10], dtype="<i2").tolist() == [0, 1, 2, 3, 4]
    assert data[64:67] == b"xyz"
    manifest = json.loads((tmp_path / "ckpt" / saved.checkpoint_id / "manifest.json").read_text())
    assert manifest["format"] == "dtruntime.checkpoint-manifest.v1" and manifest["task_id"] == "local"
    assert manifest["parts"] == [
        {"rank": 0, "object_key": saved.object_key, "size_bytes": saved.size_bytes, "sha256": saved.sha256}
    ]
    assert not list((tmp_path / "ckpt").rglob("*.tmp-*")), "no temporary file is left behind"


def test_torch_state_dicts_round_trip():
    """Runs where torch is: this interpreter, else Debian's python3-torch in a child process."""
    try:
        import torch  # noqa: F401, PLC0415
    except ImportError:
        probe = subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True, check=False)
        assert probe.returncode == 0, (
            "torch is not installed, neither here nor as Debian's python3-torch: run make setup"
        )
        site = next(path for path in sys.path if path.endswith("site-packages"))
        # Debian's numpy first (its torch is built against numpy 1.x), then this venv's grpcio/protobuf.
        prelude = f"import sys; sys.path[:0] = [{str(Path(__file__).parents[1])!r}, '/usr/lib/python3/dist-packages']"
        prelude += f"; sys.path.append({site!r})\n"
        result = subprocess.run(
            ["/usr/bin/python3", "-c", prelude + TORCH_CHECK], capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().endswith("torch ok"), result.stdout
        return
    exec(TORCH_CHECK, {})


TORCH_CHECK = r"""
import tempfile, torch
from dtruntime import CheckpointManager

model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 4))
optimizer = torch.optim.Adam(model.parameters())
model(torch.randn(8, 4)).sum().backward()
optimizer.step()
extra = {
    "bf16": torch.randn(5, 3).to(torch.bfloat16), "half": torch.randn(2, 2).half(), "bool": torch.tensor([True, False]),
    "c64": torch.randn(3, dtype=torch.complex64), "zero_d": torch.tensor(7), "empty": torch.empty(0, 3),
    "transposed": torch.randn(4, 5).T, "param": torch.nn.Parameter(torch.randn(2)),
}
extra["tied"] = extra["half"]
expected = {name: tensor.detach().clone() for name, tensor in extra.items()}
with tempfile.TemporaryDirectory() as root, CheckpointManager(root) as checkpoints:
    future = checkpoints.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "extra": extra},
                              step=1, blocking=False)
    with torch.no_grad():
        extra["half"].add_(1)  # after save() returned: the checkpoint keeps the values from before
    future.result()
    loaded = checkpoints.load()
restored = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 4))
restored.load_state_dict(loaded["model"])
torch.optim.Adam(restored.parameters()).load_state_dict(loaded["optimizer"])
assert loaded["model"]._metadata == model.state_dict()._metadata
for name, tensor in model.state_dict().items():
    assert torch.equal(loaded["model"][name], tensor) and loaded["model"][name].dtype == tensor.dtype, name
for name, tensor in expected.items():
    got = loaded["extra"][name]
    assert (got.dtype, got.shape) == (tensor.dtype, tensor.shape), name
    if tensor.is_floating_point():  # compare bits: NaN != NaN
        bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()]
        assert torch.equal(got.view(bits), tensor.view(bits)), name
    else:
        assert torch.equal(got, tensor), name
assert loaded["extra"]["param"].requires_grad
assert loaded["extra"]["tied"].data_ptr() == loaded["extra"]["half"].data_ptr()
print("torch ok")
"""


# MARK: background saves


def test_background_save_keeps_the_state_from_before_the_caller_mutates_it(manager):
    weights = np.zeros(1 << 20, dtype=np.float32)
    buffer = bytearray(b"before")
    history = [np.arange(3)]
    gate = Gate(manager)
    started = time.perf_counter()
    future = manager.save({"w": weights, "buf": buffer, "history": history}, step=1, blocking=False)
    assert time.perf_counter() - started < 5
    weights += 1
    buffer[:] = b"after!"
    history[0][:] = -1
    history.append(np.ones(2))
    assert not future.done()
    gate.opened.set()
    saved = future.result(timeout=10)
    assert saved.status == CheckpointStatus.COMMITTED
    loaded = manager.load()
    assert_same(
        loaded, {"w": np.zeros(1 << 20, dtype=np.float32), "buf": bytearray(b"before"), "history": [np.arange(3)]}
    )


def test_at_most_max_in_flight_background_saves(tmp_path):
    with CheckpointManager(tmp_path / "ckpt", max_in_flight=2) as checkpoints:
        gate = Gate(checkpoints)
        state = {"w": np.ones(1000)}
        first = checkpoints.save(state, step=1, blocking=False)
        second = checkpoints.save(state, step=2, blocking=False)
        third: list[Any] = []
        blocked = threading.Thread(target=lambda: third.append(checkpoints.save(state, step=3, blocking=False)))
        blocked.start()
        blocked.join(0.5)
        assert blocked.is_alive(), "a third save must wait while two are in flight"
        assert checkpoints.in_flight == 2
        assert gate.entered.acquire(timeout=5) and gate.entered.acquire(timeout=5)
        gate.opened.set()
        blocked.join(10)
        assert not blocked.is_alive()
        results = checkpoints.wait(timeout=10)
        assert [result.step for result in results] == [1, 2, 3]
        assert first.result().step == 1 and second.result().step == 2 and third[0].result().step == 3
        assert checkpoints.in_flight == 0
        assert checkpoints.wait() == []


def test_background_errors_surface_from_the_future_and_wait(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the store's directory should be")
    checkpoints = CheckpointManager(blocker / "ckpt")
    future = checkpoints.save({"w": np.ones(3)}, step=1, blocking=False)
    error = future.exception(timeout=10)
    assert isinstance(error, CheckpointStorageError)
    assert "not-a-directory: a file is in the way" in str(error)
    with pytest.raises(CheckpointStorageError):
        checkpoints.wait()
    checkpoints.close()  # the error was reported by wait() already
    with pytest.raises(RuntimeError, match="closed"):
        checkpoints.save({}, step=2)


def test_close_waits_for_saves_in_flight(tmp_path):
    checkpoints = CheckpointManager(tmp_path / "ckpt")
    gate = Gate(checkpoints)
    future = checkpoints.save({"w": np.ones(3)}, step=1, blocking=False)
    threading.Timer(0.2, gate.opened.set).start()
    checkpoints.close()
    assert future.done() and future.result().status == CheckpointStatus.COMMITTED


# MARK: integrity and atomicity


def test_a_flipped_byte_truncation_or_missing_part_is_detected(manager, tmp_path):
    manager.save({"w": np.arange(1000.0)}, step=1)
    saved = manager.save({"w": np.arange(1000.0)}, step=2)
    part = part_file(tmp_path, saved.checkpoint_id)
    raw = bytearray(part.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    part.write_bytes(raw)
    with pytest.raises(CheckpointCorrupted, match=f"has sha256 .*its manifest says {saved.sha256}"):
        manager.load()
    part.write_bytes(raw[:-8])
    with pytest.raises(CheckpointCorrupted, match=rf"is {len(raw) - 8} bytes, its manifest says {len(raw)}"):
        manager.load(step=2)
    part.unlink()
    with pytest.raises(CheckpointCorrupted, match="is missing although its manifest exists"):
        manager.load()
    assert_same(manager.load(step=1), {"w": np.arange(1000.0)})  # the others still load


def test_an_unreadable_manifest_is_reported(manager, tmp_path):
    saved = manager.save({"w": 1}, step=1)
    (tmp_path / "ckpt" / saved.checkpoint_id / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointCorrupted, match=r"manifest .* is unreadable"):
        CheckpointManager(tmp_path / "ckpt").load()


def test_a_torn_write_is_invisible(manager, tmp_path):
    manager.save({"step": 1}, step=1)
    # A crash mid-write leaves a temporary file; a crash before the manifest leaves a complete part without one.
    torn = tmp_path / "ckpt" / "local" / "step-000000000002-a1"
    torn.mkdir()
    (torn / "rank-00000.part.tmp-0123456789abcdef").write_bytes(b"DTRCKPT1 half a part")
    unmanifested = tmp_path / "ckpt" / "local" / "step-000000000003-a1"
    unmanifested.mkdir()
    shutil.copy(part_file(tmp_path, "local/step-000000000001-a1"), unmanifested / "rank-00000.part")
    fresh = CheckpointManager(tmp_path / "ckpt")
    assert [manifest.step for manifest in fresh.checkpoints()] == [1]
    assert fresh.load() == {"step": 1}
    with pytest.raises(CheckpointNotFound, match=r"no checkpoint of step 2 .*saved steps: 1"):
        fresh.load(step=2)
    # Saving the step again takes a new attempt next to the torn one.
    saved = fresh.save({"step": 2}, step=2)
    assert saved.checkpoint_id == "local/step-000000000002-a2"
    assert fresh.load() == {"step": 2}


def test_a_write_that_fails_midway_leaves_nothing(manager, tmp_path, monkeypatch):
    def failing_chunks(self: EncodedState, chunk_bytes: int = 0) -> Any:
        yield memoryview(self.header)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(EncodedState, "chunks", failing_chunks)
    with pytest.raises(CheckpointStorageError, match="No space left on device; check free space"):
        manager.save({"w": np.ones(10)}, step=1)
    assert [path for path in (tmp_path / "ckpt").rglob("*") if path.is_file()] == []
    with pytest.raises(CheckpointNotFound, match=r"no checkpoint in file://.* yet"):
        manager.load()


def test_after_a_rollback_the_latest_is_the_last_committed(tmp_path):
    with CheckpointManager(tmp_path / "ckpt") as checkpoints:
        for step in (1, 2, 3):
            checkpoints.save({"v": step}, step=step)
        assert checkpoints.load(step=2) == {"v": 2}  # roll back, train again from step 2
        again = checkpoints.save({"v": "2 again"}, step=2)
        assert again.checkpoint_id == "local/step-000000000002-a2"
        assert checkpoints.load() == {"v": "2 again"} and checkpoints.load(step=2) == {"v": "2 again"}
        assert checkpoints.load(step=3) == {"v": 3}
    # The order survives in the manifests: a new manager sees the same.
    with CheckpointManager(tmp_path / "ckpt", keep_last=2) as checkpoints:
        assert [m.checkpoint_id.split("/")[1] for m in checkpoints.checkpoints()] == [
            "step-000000000001-a1",
            "step-000000000002-a1",
            "step-000000000003-a1",
            "step-000000000002-a2",
        ]
        checkpoints.save({"v": 4}, step=4)
        assert [m.step for m in checkpoints.checkpoints()] == [2, 4]
        assert checkpoints.load(step=2) == {"v": "2 again"}


def test_pickles_load_only_when_allowed(tmp_path):
    with CheckpointManager(tmp_path / "ckpt") as checkpoints:
        checkpoints.save({"schedule": Schedule(1, [])}, step=1)
    with (
        CheckpointManager(tmp_path / "ckpt", allow_pickle=False) as strict,
        pytest.raises(
            CheckpointError, match=r"state\['schedule'\] is a pickled .*Schedule; loading it needs allow_pickle"
        ),
    ):
        strict.load()


# MARK: retention


def manifest(step: int, attempt: int = 1, committed: float | None = None, **metrics: float) -> CheckpointManifest:
    """A committed checkpoint as retention sees it; committed at second ``committed`` (default: ``step``)."""
    moment = datetime.datetime.fromtimestamp(step if committed is None else committed, tz=datetime.timezone.utc)
    return CheckpointManifest(
        f"t/step-{step:012d}-a{attempt}", "t", step, 0, 1, (), metrics, {}, moment, moment, StoreLocation(""), ""
    )


def test_retention_selection():
    def expired(manifests: list[CheckpointManifest], **policy: Any) -> list[str]:
        return [m.checkpoint_id.split("/")[1] for m in expired_checkpoints(manifests, **policy)]

    losses = [manifest(1, loss=0.9), manifest(2, loss=0.1), manifest(3, loss=0.5), manifest(4, loss=0.7)]
    latest = manifest(5, loss=float("nan"))
    assert expired([*losses, latest], keep_last=2) == [f"step-00000000000{s}-a1" for s in (1, 2, 3)]
    assert expired([latest, *reversed(losses)], keep_last=2, keep_best=1, metric="loss") == [
        "step-000000000001-a1",
        "step-000000000003-a1",
    ]
    assert expired([*losses, latest], keep_last=1, keep_best=2, metric="loss", mode="max") == [
        "step-000000000002-a1",
        "step-000000000003-a1",
    ]
    # Ties go to the newer checkpoint; a missing or NaN metric never counts as best; the latest always stays.
    tied = [manifest(1, acc=0.5), manifest(2, acc=0.5), manifest(3), manifest(4, acc=float("nan"))]
    assert expired(tied, keep_last=1, keep_best=1, metric="acc", mode="max") == [
        "step-000000000001-a1",
        "step-000000000003-a1",
    ]
    # "Last" is by commit order: after a rollback to step 2, its new attempt is newer than the abandoned step 3.
    rollback = [manifest(1), manifest(2), manifest(3), manifest(2, attempt=2, committed=10)]
    assert expired(rollback, keep_last=2) == ["step-000000000001-a1", "step-000000000002-a1"]
    # Equal commit times fall back to step, then attempt.
    same_time = [manifest(2, committed=7), manifest(1, attempt=2, committed=7), manifest(1, committed=7)]
    assert expired(same_time, keep_last=1) == ["step-000000000001-a1", "step-000000000001-a2"]


def test_retention_deletes_from_the_store_after_each_save(tmp_path):
    with CheckpointManager(tmp_path / "ckpt", keep_last=2, keep_best=1, best_metric="loss") as checkpoints:
        for step, loss in [(1, 0.9), (2, 0.1), (3, 0.5), (4, 0.7), (5, 0.8)]:
            checkpoints.save({"step": step}, step=step, metrics={"loss": loss})
        assert [m.step for m in checkpoints.checkpoints()] == [2, 4, 5]
        assert sorted(os.listdir(tmp_path / "ckpt" / "local")) == [
            "step-000000000002-a1",
            "step-000000000004-a1",
            "step-000000000005-a1",
        ]
        assert checkpoints.load() == {"step": 5}
        assert checkpoints.load(step=2) == {"step": 2}
    # A new manager reads the metrics back from the manifests.
    with CheckpointManager(tmp_path / "ckpt", keep_last=1, keep_best=1, best_metric="loss") as checkpoints:
        checkpoints.save({"step": 6}, step=6, metrics={"loss": 0.3})
        assert [m.step for m in checkpoints.checkpoints()] == [2, 6]


# MARK: S3


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return s3_server


SMALL_PARTS = S3Options(multipart_threshold=5 << 20, multipart_chunksize=5 << 20, max_concurrency=4)


def test_s3_round_trip_with_a_multipart_upload(s3_env):
    bucket = s3_env.create_bucket("roundtrip")
    state = {"weights": np.random.default_rng(3).standard_normal(12 << 17), **every_kind_of_array()}  # 12 MiB + a bit
    with CheckpointManager(
        f"s3://{bucket}/runs/one",
        s3_endpoint=s3_env.endpoint,
        s3_region=s3_env.region,
        s3_options=SMALL_PARTS,
        keep_last=1,
    ) as checkpoints:
        saved = checkpoints.save(state, step=100, epoch=2, metrics={"loss": 0.25})
        key = f"runs/one/{saved.object_key}"
        assert saved.path == f"s3://{bucket}/{key}"
        head = s3_env.client().head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == saved.size_bytes
        assert head["ETag"].strip('"').endswith("-3"), "12 MiB in 5 MiB parts is a three-part multipart upload"
        body = s3_env.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == saved.sha256
        assert_same(checkpoints.load(), {name: np.array(value, order="C") for name, value in state.items()})
        future = checkpoints.save({"small": b"x"}, step=200, blocking=False)
        assert future.result(timeout=30).status == CheckpointStatus.COMMITTED
        assert [m.step for m in checkpoints.checkpoints()] == [200]
        listed = s3_env.client().list_objects_v2(Bucket=bucket, Prefix="runs/one/")["Contents"]
        assert sorted(item["Key"] for item in listed) == [
            "runs/one/local/step-000000000200-a1/manifest.json",
            "runs/one/local/step-000000000200-a1/rank-00000.part",
        ]
        assert checkpoints.load() == {"small": b"x"}


def test_s3_corruption_is_detected(s3_env):
    bucket = s3_env.create_bucket("corrupt")
    with CheckpointManager(f"s3://{bucket}", s3_endpoint=s3_env.endpoint, s3_region=s3_env.region) as checkpoints:
        saved = checkpoints.save({"w": np.arange(100)}, step=1)
        client = s3_env.client()
        raw = bytearray(client.get_object(Bucket=bucket, Key=saved.object_key)["Body"].read())
        raw[-1] ^= 0xFF
        client.put_object(Bucket=bucket, Key=saved.object_key, Body=bytes(raw))
        with pytest.raises(CheckpointCorrupted, match="has sha256"):
            checkpoints.load()


def test_s3_errors_say_what_to_check(s3_env, monkeypatch):
    bucket = s3_env.create_bucket("errors")
    once = S3Options(max_attempts=1)

    def save_to(uri: str, endpoint: str = s3_env.endpoint) -> None:
        with CheckpointManager(uri, s3_endpoint=endpoint, s3_region=s3_env.region, s3_options=once) as checkpoints:
            checkpoints.save({"w": 1}, step=1)

    with pytest.raises(CheckpointStorageError, match=r"bucket 'missing-bucket' does not exist at http://127.0.0.1"):
        save_to("s3://missing-bucket/x")
    with socket_on_free_port() as port, pytest.raises(CheckpointStorageError, match="cannot reach the S3 endpoint"):
        save_to(f"s3://{bucket}", endpoint=f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    with pytest.raises(
        CheckpointStorageError, match=r"refused the credentials .*check AWS_ACCESS_KEY_ID and AWS_SECRET"
    ):
        save_to(f"s3://{bucket}")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CheckpointStorageError, match="no AWS credentials: set AWS_ACCESS_KEY_ID"):
        save_to(f"s3://{bucket}")


class socket_on_free_port:  # noqa: N801 - used like a function
    """A port that refuses connections: bound by us, never listening."""

    def __enter__(self) -> int:
        import socket  # noqa: PLC0415

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return int(self._sock.getsockname()[1])

    def __exit__(self, *_: object) -> None:
        self._sock.close()


# MARK: bad input


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"step": -1}, r"step must be an integer >= 0 \(got -1\)"),
        ({"step": 1.5}, r"step must be an integer >= 0 \(got 1.5\)"),
        ({"step": "10"}, r"step must be an integer >= 0 \(got '10'\)"),
        ({"step": True}, r"step must be an integer >= 0 \(got True\)"),
        ({"step": 2**63}, r"step must be an integer >= 0 \(got 9223372036854775808\)"),
        ({"step": 1, "epoch": -2}, r"epoch must be an integer >= 0 \(got -2\)"),
        ({"step": 1, "epoch": None}, r"epoch must be an integer >= 0 \(got None\)"),
        ({"step": 1, "metrics": {"bad name": 1.0}}, "metric names must be 1-128 printable ASCII"),
        ({"step": 1, "metrics": {"loss": "low"}}, r"metric 'loss' must be a number \(got 'low'\)"),
        ({"step": 1, "metrics": {"loss": float("nan")}}, r"metric 'loss' must be finite \(got nan\)"),
        ({"step": 1, "metrics": {"acc": np.inf}}, r"metric 'acc' must be finite \(got inf\)"),
        ({"step": 1, "metadata": {"git": 123}}, r"metadata values must be str \(got int for 'git'\)"),
    ],
)
def test_bad_step_epoch_metrics_and_metadata_are_value_errors(manager, arguments, message):
    with pytest.raises(ValueError, match=message):
        manager.save({"w": 1}, **arguments)
    assert manager.checkpoints() == []


def test_numpy_integers_are_accepted_as_steps(manager):
    assert manager.save({}, step=np.int64(12), epoch=np.uint8(1)).checkpoint_id == "local/step-000000000012-a1"


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"optimizer": {"hook": lambda: None}}, r"state\['optimizer'\]\['hook'\] is a builtins.function, which cannot"),
        ({"files": [1, threading.Lock()]}, r"state\['files'\]\[1\] is a _thread.lock, which cannot be saved"),
        (
            {"objects": np.array([lambda: 0], dtype=object)},
            r"state\['objects'\] is a numpy.ndarray, which cannot be saved",
        ),
    ],
)
def test_unsupported_values_are_type_errors_naming_their_path(manager, state, message):
    with pytest.raises(TypeError, match=message):
        manager.save(state, step=1)
    with pytest.raises(TypeError, match=message):
        manager.save(state, step=1, blocking=False)
    assert manager.checkpoints() == [] and manager.in_flight == 0


def test_without_pickle_only_plain_values_are_accepted(tmp_path):
    with CheckpointManager(tmp_path, allow_pickle=False) as checkpoints:
        with pytest.raises(
            TypeError, match=r"state\['tags'\] is a builtins.set, which checkpoints store only with pickle"
        ):
            checkpoints.save({"tags": {"a"}}, step=1)
        cycle: list[Any] = []
        cycle.append(cycle)
        with pytest.raises(TypeError, match=r"state\[0\] contains itself"):
            checkpoints.save(cycle, step=1)


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("", "store must be a directory"),
        ("http://example.com/ckpt", "the http:// scheme is not supported"),
        ("gs://bucket/x", "the gs:// scheme is not supported"),
        ("s3://", "S3 bucket names are 3-63 characters"),
        ("s3://ab", "S3 bucket names are 3-63 characters"),
        ("s3://bucket/../escape", "the S3 prefix must be 1-512 bytes"),
        ("file://host/dir", "a local store must be file:///absolute/dir"),
        ("file://relative", "a local store must be file:///absolute/dir"),
    ],
)
def test_invalid_store_uris_say_what_is_accepted(store, message):
    with pytest.raises(ValueError, match=message):
        CheckpointManager(store)


def test_invalid_manager_arguments(tmp_path):
    cases = [
        ({"max_in_flight": 0}, "max_in_flight must be an integer >= 1"),
        ({"keep_last": 0}, "keep_last must be an integer >= 1, or None"),
        ({"keep_last": 2, "keep_best": 1}, "keep_best needs best_metric"),
        ({"keep_best": 1, "best_metric": "loss"}, "keep_best needs keep_last"),
        ({"keep_last": 2, "best_mode": "median"}, "best_mode must be 'min'"),
        ({"task_id": "../up"}, r"task_id must be 1-64 characters of \[A-Za-z0-9._-\]"),
        ({"s3_endpoint": "http://x"}, "s3_endpoint and s3_region apply to s3:// stores only"),
        ({"worker_id": "w1"}, "worker_id and membership_epoch need a coordinator"),
    ]
    for arguments, message in cases:
        with pytest.raises(ValueError, match=message):
            CheckpointManager(tmp_path, **arguments)
    with pytest.raises(ValueError, match="multipart_chunksize must be >= 5 MiB"):
        S3Options(multipart_chunksize=1 << 20)
    with CheckpointManager(tmp_path) as checkpoints:
        with pytest.raises(ValueError, match="restore_data needs a coordinator"):
            checkpoints.load(restore_data=True)
        with pytest.raises(CheckpointNotFound, match=f"no checkpoint in file://{tmp_path} .*yet"):
            checkpoints.load()


# MARK: forked snapshots


def test_forked_background_saves_keep_the_state_of_the_save_call(tmp_path, monkeypatch):
    forks = []
    real_fork = os.fork

    def counting_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counting_fork)
    weights = np.arange(1 << 20, dtype=np.float32)
    with CheckpointManager(str(tmp_path / "ckpt"), snapshot="fork", max_in_flight=2) as manager:
        futures = []
        for step in range(4):
            futures.append(manager.save({"w": weights, "step": np.int64(step)}, step=step, blocking=False))
            weights += 1  # right after save() returned: the child still sees the state of the call
        saved = [future.result(timeout=60) for future in futures]
        assert [checkpoint.status for checkpoint in saved] == [CheckpointStatus.COMMITTED] * 4
        for step in range(4):
            loaded = manager.load(step=step)
            assert int(loaded["step"]) == step
            assert np.array_equal(loaded["w"], np.arange(1 << 20, dtype=np.float32) + step)
    assert not list((tmp_path / "ckpt").rglob("*.tmp-*")), "no temporary files left"
    assert len(forks) == 4, "each background save was written by a child process, not copied"


def test_a_forked_write_that_fails_surfaces_the_childs_error(s3_env, monkeypatch):
    bucket = s3_env.create_bucket("forkfail")
    manager = CheckpointManager(
        f"s3://{bucket}/x", s3_endpoint=s3_env.endpoint, s3_region=s3_env.region, snapshot="fork"
    )
    manager.checkpoints()  # the parent's S3 client exists, with good credentials
    # The child opens its own client, from the environment as it is at the fork: with a wrong secret.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    future = manager.save({"w": np.ones(10)}, step=1, blocking=False)
    failure = r"in a forked process failed: .*refused the credentials"
    with pytest.raises(CheckpointStorageError, match=failure):
        future.result(timeout=60)
    with pytest.raises(CheckpointStorageError, match=failure):
        manager.close()  # closing reports what failed in the background, too
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_env.secret_key)
    with CheckpointManager(f"s3://{bucket}/x", s3_endpoint=s3_env.endpoint, s3_region=s3_env.region) as reader:
        assert reader.checkpoints() == [], "nothing was committed"
    with pytest.raises(ValueError, match="snapshot must be 'copy' or 'fork'"):
        CheckpointManager(str(s3_env.endpoint), snapshot="cow")  # type: ignore[arg-type]

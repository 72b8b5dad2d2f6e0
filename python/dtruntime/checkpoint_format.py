"""The byte format of a checkpoint part: a JSON header describing the state's tree, then the raw bytes of its arrays.

A part is laid out like safetensors, generalised to nested Python state (docs/CHECKPOINTS.md has the full spec)::

    "DTRCKPT1"  u64 little-endian header length  JSON header (ASCII, space-padded)  data section

Every buffer of the data section starts at a multiple of 64 bytes, so a loaded array is a zero-copy, aligned view of
the part's bytes. Encoding never copies array data: :meth:`EncodedState.chunks` streams the header, then each array's
own memory, in large slices (a non-contiguous array is made contiguous a block of rows at a time).
:meth:`EncodedState.snapshot` is the one place that copies, into one staging buffer, for background saves.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import pickle
import struct
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dtruntime.errors import CheckpointCorrupted, CheckpointError

MAGIC = b"DTRCKPT1"
FORMAT_VERSION = 1
ALIGNMENT = 64
"""Every buffer starts at a multiple of this many bytes (cache lines; enough for any dtype and for AVX-512 loads)."""
PREFIX_BYTES = len(MAGIC) + 8
MAX_HEADER_BYTES = 1 << 28
"""Readers refuse larger headers (a corrupt length must not make them allocate gigabytes)."""
CHUNK_BYTES = 16 << 20
"""Slice size of the write stream: large sequential writes, and a bounded copy for non-contiguous arrays."""
_SMALL = 256 << 10
"""Pieces smaller than this (the header, padding, small arrays) are coalesced into one chunk before a write."""
_PARALLEL_COPY_BYTES = 64 << 20
_ZEROS = bytes(ALIGNMENT)
_INT_OF_SIZE = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}

Source = np.ndarray | bytes | bytearray
"""What a buffer of the data section is written from: an array (any layout; written in C order) or bytes."""


# MARK: encoding


@dataclass
class EncodedState:
    """A state laid out for writing: the header and the buffers at their data-section offsets, in offset order.

    Buffers reference the caller's memory (nothing is copied) until :meth:`snapshot` copies them.
    """

    header: bytes
    """Magic, header length, JSON and padding: its length is a multiple of :data:`ALIGNMENT`."""
    segments: list[tuple[int, Source]]
    data_bytes: int

    @property
    def size(self) -> int:
        """Total bytes of the part."""
        return len(self.header) + self.data_bytes

    def chunks(self, chunk_bytes: int = CHUNK_BYTES) -> Iterator[memoryview]:
        """The part's bytes in order, as read-only slices of at most ``chunk_bytes`` (small pieces coalesced).

        A yielded slice stays valid after the iterator moves on (consumers may hash it on another thread).
        """
        pending = bytearray()
        position = 0

        def pieces() -> Iterator[memoryview]:
            nonlocal position
            yield memoryview(self.header)
            for offset, source in self.segments:
                if offset > position:
                    yield memoryview(_ZEROS)[: offset - position]
                yield from _source_chunks(source, chunk_bytes)
                position = offset + _nbytes(source)

        for piece in pieces():
            if len(piece) < _SMALL:
                pending += piece
                if len(pending) >= chunk_bytes:
                    yield memoryview(pending)
                    pending = bytearray()
                continue
            if pending:
                yield memoryview(pending)
                pending = bytearray()
            yield piece
        if pending:
            yield memoryview(pending)

    def snapshot(self, allocate: Callable[[int], np.ndarray]) -> EncodedState:
        """A copy whose data section is one buffer from ``allocate(data_bytes)`` (a uint8 array at least that long):
        the caller may mutate its state as soon as this returns."""
        data = allocate(self.data_bytes)[: self.data_bytes]
        position = 0
        for offset, source in self.segments:
            data[position:offset] = 0
            _copy_into(data[offset : offset + _nbytes(source)], source)
            position = offset + _nbytes(source)
        return EncodedState(self.header, [(0, data)] if self.data_bytes else [], self.data_bytes)


def encode(state: Any, *, allow_pickle: bool = True) -> EncodedState:
    """Lays ``state`` out for writing without copying its arrays.

    Raises ``TypeError`` naming the path of a value that cannot be saved (e.g. ``state['optimizer']['hook']``).
    """
    encoder = _Encoder(allow_pickle)
    tree = encoder.node(state, "state")
    body = json.dumps(
        {"format": "dtruntime-checkpoint", "version": FORMAT_VERSION, "data_bytes": encoder.offset, "tree": tree},
        separators=(",", ":"),
        allow_nan=False,
    ).encode("ascii")
    length = _align(PREFIX_BYTES + len(body)) - PREFIX_BYTES
    header = MAGIC + struct.pack("<Q", length) + body + b" " * (length - len(body))
    return EncodedState(header, encoder.segments, encoder.offset)


class _Encoder:
    def __init__(self, allow_pickle: bool) -> None:
        self.allow_pickle = allow_pickle
        self.segments: list[tuple[int, Source]] = []
        self.offset = 0
        self._active: set[int] = set()
        # Arrays and tensors referenced twice (tied weights) are stored once and load as views of the same bytes.
        self._seen: dict[int, tuple[Any, dict[str, Any]]] = {}

    def add(self, source: Source) -> int:
        offset = _align(self.offset)
        self.segments.append((offset, source))
        self.offset = offset + _nbytes(source)
        return offset

    def node(self, value: Any, path: str) -> Any:
        kind = type(value)
        if value is None or kind in (bool, str, int):
            return value
        if kind in (list, tuple, dict, OrderedDict):
            if id(value) in self._active:
                raise TypeError(f"{path} contains itself: a checkpoint state must be a tree, not a cycle")
            self._active.add(id(value))
            try:
                return self._container(value, path)
            finally:
                self._active.discard(id(value))
        return self._leaf(value, path)

    def _container(self, value: Any, path: str) -> Any:
        if type(value) is list:
            return [self.node(item, f"{path}[{index}]") for index, item in enumerate(value)]
        if type(value) is tuple:
            return {"t": "tuple", "items": [self.node(item, f"{path}[{index}]") for index, item in enumerate(value)]}
        return self._dict(value, path)

    def _leaf(self, value: Any, path: str) -> Any:
        kind = type(value)
        if kind is float:
            # JSON numbers hold every finite double exactly (repr round-trips); NaN payloads and infinities need bits.
            return {"t": "float", "v": value} if math.isfinite(value) else {"t": "float", "bits": _bits(value)}
        if kind in (bytes, bytearray):
            return {"t": kind.__name__, "offset": self.add(value), "nbytes": len(value)}
        if kind in (np.ndarray, np.memmap) and not value.dtype.hasobject:
            return self._shared(value, lambda: self._array(np.asarray(value), "ndarray"))
        if isinstance(value, np.generic) and not value.dtype.hasobject:
            return self._array(np.asarray(value), "numpy_scalar")
        tensor_type = _torch_tensor_type()
        if tensor_type is not None and isinstance(value, tensor_type) and _plain_tensor(value):
            return self._shared(value, lambda: self._tensor(value))
        return self._pickle(value, path)

    def _dict(self, value: dict[Any, Any], path: str) -> dict[str, Any]:
        items = []
        for key, item in value.items():
            key_node = key if type(key) is str else self.node(key, f"{path} key {key!r}")
            items.append([key_node, self.node(item, f"{path}[{key!r}]")])
        node: dict[str, Any] = {"t": "dict", "items": items}
        if type(value) is OrderedDict:
            node["ordered"] = True
            # torch's state_dict() carries per-module versions here; load_state_dict reads them back.
            metadata = getattr(value, "_metadata", None)
            if metadata is not None:
                node["metadata"] = self.node(metadata, f"{path}._metadata")
        return node

    def _shared(self, value: Any, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        seen = self._seen.get(id(value))
        if seen is not None and seen[0] is value:
            return seen[1]
        node = make()
        self._seen[id(value)] = (value, node)
        return node

    def _array(self, array: np.ndarray, kind: str) -> dict[str, Any]:
        descr = np.lib.format.dtype_to_descr(array.dtype)
        offset = self.add(array)
        return {"t": kind, "dtype": descr, "shape": list(array.shape), "offset": offset, "nbytes": array.nbytes}

    def _tensor(self, tensor: Any) -> dict[str, Any]:
        data = tensor.detach()
        if data.device.type != "cpu":
            data = data.cpu()
        for resolve in ("resolve_conj", "resolve_neg"):
            if hasattr(data, resolve):
                data = getattr(data, resolve)()
        data = data.contiguous()
        flat = data.reshape(-1)
        try:
            raw = flat.numpy()
        except (TypeError, RuntimeError):  # bfloat16, float8 ...: no numpy dtype, so store the bits
            torch = sys.modules["torch"]
            raw = flat.view(getattr(torch, _INT_OF_SIZE[data.element_size()])).numpy()
        raw = raw.view(np.uint8)
        node = {
            "t": "torch",
            "dtype": str(data.dtype).removeprefix("torch."),
            "shape": list(data.shape),
            "offset": self.add(raw),
            "nbytes": raw.nbytes,
        }
        if tensor.requires_grad:
            node["requires_grad"] = True
        return node

    def _pickle(self, value: Any, path: str) -> dict[str, Any]:
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        if not self.allow_pickle:
            raise TypeError(
                f"{path} is a {kind}, which checkpoints store only with pickle: pass allow_pickle=True, or convert it "
                "to dicts, lists, numpy arrays, torch tensors, bytes, str, int, float, bool or None"
            )
        try:
            blob = pickle.dumps(value, protocol=5)
        except Exception as error:
            raise TypeError(
                f"{path} is a {kind}, which cannot be saved: it is not a dict, list, tuple, numpy array, torch tensor, "
                f"bytes, str, int, float, bool or None, and pickling it failed ({error})"
            ) from error
        return {"t": "pickle", "type": kind, "offset": self.add(blob), "nbytes": len(blob)}


def _bits(value: float) -> str:
    return struct.pack(">d", value).hex()


def _plain_tensor(tensor: Any) -> bool:
    """Dense, non-quantized tensors are stored as raw bytes; the rest (sparse, quantized, meta) go through pickle."""
    torch = sys.modules["torch"]
    return bool(tensor.layout == torch.strided and not tensor.is_quantized and tensor.device.type != "meta")


def _torch_tensor_type() -> type | None:
    # Never import torch here: if the caller has not imported it, no value can be a tensor.
    torch = sys.modules.get("torch")
    return getattr(torch, "Tensor", None) if torch is not None else None


def _align(offset: int) -> int:
    return (offset + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _nbytes(source: Source) -> int:
    return source.nbytes if isinstance(source, np.ndarray) else len(source)


def _source_chunks(source: Source, chunk_bytes: int) -> Iterator[memoryview]:
    if not isinstance(source, np.ndarray):
        view = memoryview(source).cast("B")
        for start in range(0, len(view), chunk_bytes):
            yield view[start : start + chunk_bytes]
        return
    if source.nbytes == 0:
        return
    if source.flags.c_contiguous:
        flat = source.reshape(-1).view(np.uint8).data
        for start in range(0, len(flat), chunk_bytes):
            yield flat[start : start + chunk_bytes]
        return
    # Non-contiguous (a slice, a transpose, Fortran order): contiguous copies of a few rows at a time, in C order.
    rows = max(1, chunk_bytes // max(1, source[0].nbytes))
    for start in range(0, source.shape[0], rows):
        yield from _source_chunks(np.ascontiguousarray(source[start : start + rows]), chunk_bytes)


def _copy_into(target: np.ndarray, source: Source) -> None:
    """Copies a buffer's bytes into ``target`` (a uint8 slice of exactly its size), on several threads when large."""
    if not isinstance(source, np.ndarray):
        target[:] = np.frombuffer(source, dtype=np.uint8)
        return
    if source.nbytes == 0:
        return
    if not source.flags.c_contiguous:
        np.copyto(target.view(source.dtype).reshape(source.shape), source)
        return
    flat = source.reshape(-1).view(np.uint8)
    workers = min(4, os.cpu_count() or 1) if flat.nbytes >= _PARALLEL_COPY_BYTES else 1
    bounds = [flat.nbytes * index // workers for index in range(workers + 1)]
    threads = [
        threading.Thread(target=np.copyto, args=(target[lo:hi], flat[lo:hi]))
        for lo, hi in itertools.pairwise(bounds[1:])
    ]
    for thread in threads:
        thread.start()
    np.copyto(target[: bounds[1]], flat[: bounds[1]])
    for thread in threads:
        thread.join()


# MARK: decoding


def decode(part: np.ndarray, *, allow_pickle: bool = True, source: str = "checkpoint part") -> Any:
    """Rebuilds the state from a part's bytes (a uint8 array). Arrays are views of ``part``: no copy is made.

    Raises :class:`CheckpointCorrupted` when the bytes are not a valid part, naming ``source``.
    """
    header = read_header(part, source)
    data = part[PREFIX_BYTES + header["_length"] :]
    if data.nbytes != header["data_bytes"]:
        raise CheckpointCorrupted(
            f"{source} is truncated or has trailing bytes: the header announces {header['data_bytes']} data bytes, "
            f"the part holds {data.nbytes}"
        )
    decoder = _Decoder(data, allow_pickle, source)
    try:
        return decoder.node(header["tree"], "state")
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, struct.error) as error:
        raise CheckpointCorrupted(f"{source} has a malformed header near {decoder.path}: {error!r}") from error


def read_header(part: np.ndarray, source: str = "checkpoint part") -> dict[str, Any]:
    """The parsed JSON header of a part (plus ``_length``, the header's padded length); checks magic and version."""
    if part.nbytes < PREFIX_BYTES or bytes(part[: len(MAGIC)]) != MAGIC:
        raise CheckpointCorrupted(f"{source} is not a dtruntime checkpoint part (no {MAGIC!r} magic at its start)")
    (length,) = struct.unpack("<Q", bytes(part[len(MAGIC) : PREFIX_BYTES]))
    if length > min(MAX_HEADER_BYTES, part.nbytes - PREFIX_BYTES):
        raise CheckpointCorrupted(f"{source} announces a {length}-byte header, longer than the part itself")
    try:
        header = json.loads(bytes(part[PREFIX_BYTES : PREFIX_BYTES + length]))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointCorrupted(f"{source} has an unreadable header: {error}") from error
    if not isinstance(header, dict) or header.get("format") != "dtruntime-checkpoint":
        raise CheckpointCorrupted(f"{source} has a header that is not a dtruntime checkpoint header")
    if header.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{source} is format version {header.get('version')!r}; this SDK reads version {FORMAT_VERSION}: "
            "upgrade dtruntime to load it"
        )
    if not isinstance(header.get("data_bytes"), int) or "tree" not in header:
        raise CheckpointCorrupted(f"{source} has a header without data_bytes or tree")
    header["_length"] = length
    return header


class _Decoder:
    def __init__(self, data: np.ndarray, allow_pickle: bool, source: str) -> None:
        self.data = data
        self.allow_pickle = allow_pickle
        self.source = source
        self.path = "state"

    def node(self, node: Any, path: str) -> Any:
        self.path = path
        if node is None or isinstance(node, (bool, str, int)):
            return node
        if isinstance(node, list):
            return [self.node(item, f"{path}[{index}]") for index, item in enumerate(node)]
        kind = node["t"]
        decoders: dict[str, Callable[[dict[str, Any], str], Any]] = {
            "float": self._float,
            "tuple": self._tuple,
            "dict": self._dict,
            "bytes": self._bytes,
            "bytearray": self._bytes,
            "ndarray": self._array,
            "numpy_scalar": self._array,
            "torch": self._tensor,
            "pickle": self._unpickle,
        }
        if kind not in decoders:
            raise CheckpointError(
                f"{self.source}: {path} has value type {kind!r}, unknown to this SDK: upgrade dtruntime to load it"
            )
        return decoders[kind](node, path)

    def _float(self, node: dict[str, Any], path: str) -> float:
        if "bits" in node:
            return float(struct.unpack(">d", bytes.fromhex(node["bits"]))[0])
        return float(node["v"])

    def _tuple(self, node: dict[str, Any], path: str) -> tuple[Any, ...]:
        return tuple(self.node(item, f"{path}[{index}]") for index, item in enumerate(node["items"]))

    def _bytes(self, node: dict[str, Any], path: str) -> bytes | bytearray:
        raw = self._buffer(node).tobytes()
        return raw if node["t"] == "bytes" else bytearray(raw)

    def _dict(self, node: dict[str, Any], path: str) -> dict[Any, Any]:
        result: dict[Any, Any] = OrderedDict() if node.get("ordered") else {}
        for key_node, value_node in node["items"]:
            key = self.node(key_node, f"{path} key")
            result[key] = self.node(value_node, f"{path}[{key!r}]")
        if "metadata" in node:
            result._metadata = self.node(node["metadata"], f"{path}._metadata")  # type: ignore[attr-defined]
        return result

    def _buffer(self, node: dict[str, Any]) -> np.ndarray:
        offset, nbytes = node["offset"], node["nbytes"]
        if not (isinstance(offset, int) and isinstance(nbytes, int) and 0 <= offset <= offset + nbytes):
            raise ValueError(f"bad offset/nbytes {offset!r}/{nbytes!r}")
        if offset + nbytes > self.data.nbytes:
            raise CheckpointCorrupted(
                f"{self.source}: {self.path} lies at bytes {offset}..{offset + nbytes} of a {self.data.nbytes}-byte "
                "data section"
            )
        return self.data[offset : offset + nbytes]

    def _array(self, node: dict[str, Any], path: str) -> Any:
        dtype = np.lib.format.descr_to_dtype(_tuples(node["dtype"]))
        shape = tuple(node["shape"])
        if not all(isinstance(size, int) and size >= 0 for size in shape):
            raise ValueError(f"bad shape {shape!r}")
        raw = self._buffer(node)
        if raw.nbytes != math.prod(shape) * dtype.itemsize:
            raise CheckpointCorrupted(
                f"{self.source}: {self.path} announces shape {shape} of {dtype} ({math.prod(shape) * dtype.itemsize} "
                f"bytes) but {raw.nbytes} bytes"
            )
        array = raw.view(dtype).reshape(shape) if dtype.itemsize else np.empty(shape, dtype)
        return array[()] if node["t"] == "numpy_scalar" else array

    def _tensor(self, node: dict[str, Any], path: str) -> Any:
        try:
            import torch  # noqa: PLC0415 - optional and heavy: only checkpoints with tensors need it
        except ImportError as error:
            raise CheckpointError(
                f"{self.source}: {path} is a torch tensor: install torch to load this checkpoint"
            ) from error
        dtype = getattr(torch, node["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise CheckpointError(f"{self.source}: {path} has torch dtype {node['dtype']!r}, unknown to this torch")
        shape = tuple(node["shape"])
        raw = self._buffer(node)
        itemsize = torch.empty((), dtype=dtype).element_size()  # torch.dtype.itemsize is torch >= 2.1 only
        if raw.nbytes != math.prod(shape) * itemsize:
            raise CheckpointCorrupted(
                f"{self.source}: {path} announces shape {shape} of {dtype} but holds {raw.nbytes} bytes"
            )
        if raw.nbytes == 0:
            tensor = torch.empty(shape, dtype=dtype)
        else:
            tensor = torch.frombuffer(raw.data, dtype=dtype).reshape(shape)
        if node.get("requires_grad"):
            tensor.requires_grad_(True)
        return tensor

    def _unpickle(self, node: dict[str, Any], path: str) -> Any:
        kind = node.get("type", "object")
        if not self.allow_pickle:
            raise CheckpointError(
                f"{self.source}: {path} is a pickled {kind}; loading it needs allow_pickle=True (only load pickles "
                "from a store you trust)"
            )
        blob = self._buffer(node)
        try:
            return pickle.loads(blob.data)
        except Exception as error:
            raise CheckpointError(
                f"{self.source}: cannot unpickle {path} (a {kind}): {error!r}; is the module defining it importable?"
            ) from error


def _tuples(descr: Any) -> Any:
    """JSON turned the tuples of a structured dtype's descr into lists; numpy wants them back."""
    if isinstance(descr, list):
        if all(isinstance(size, int) for size in descr):  # a sub-array shape
            return tuple(descr)
        return [tuple(_tuples(item) for item in field) for field in descr]
    return descr

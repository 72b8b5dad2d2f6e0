"""Where checkpoint parts and manifests live: a local directory or an S3 bucket.

Keys are relative to the store's root (the directory, or the bucket's prefix) and are validated with the
coordinator's rules (``ObjectKey``: ``/``-separated segments of ``[A-Za-z0-9._-]``, none empty, ``.`` or ``..``), so
nothing, not even a key a coordinator sent, can name a file outside the root.

Writes are atomic: a local part goes to ``<dir>/<name>.tmp-<hex>``, is fsynced and renamed into place, and the
directory is fsynced; an S3 part is one (multipart) upload that becomes visible whole. Every part is hashed (sha256)
while it is written, on a helper thread so that hashing overlaps the I/O.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import io
import os
import queue
import re
import secrets
import shutil
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from dtruntime.checkpoint_format import EncodedState
from dtruntime.checkpoint_manifest import CheckpointPart, StoreLocation
from dtruntime.errors import CheckpointCorrupted, CheckpointStorageError
from dtruntime.validation import object_key as validate_key

if TYPE_CHECKING:  # boto3's types come from boto3-stubs (a development dependency), not from boto3
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")
ACCEPTED_STORES = (
    'a directory ("./checkpoints", "/data/ckpt"), "file:///absolute/dir", or "s3://bucket" / "s3://bucket/prefix"'
)
_READ_CHUNK = 16 << 20
_WRITEBACK_BYTES = 64 << 20


@dataclass(frozen=True)
class S3Options:
    """How parts are moved to and from S3 (boto3's transfer manager): multipart above ``multipart_threshold`` bytes,
    in parts of ``multipart_chunksize``, ``max_concurrency`` requests at a time, each tried up to ``max_attempts``
    times. The defaults are boto3's."""

    multipart_threshold: int = 8 << 20
    multipart_chunksize: int = 8 << 20
    max_concurrency: int = 10
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.multipart_chunksize < 5 << 20:
            raise ValueError(
                f"multipart_chunksize must be >= 5 MiB, S3's minimum part size (got {self.multipart_chunksize})"
            )
        if min(self.multipart_threshold, self.max_concurrency, self.max_attempts) < 1:
            raise ValueError("multipart_threshold, max_concurrency and max_attempts must be >= 1")


@dataclass(frozen=True)
class WriteResult:
    """What a part write produced: what the coordinator (or a manifest) needs to verify it later."""

    size_bytes: int
    sha256: str
    seconds: float


class BlobStore(Protocol):
    """The operations checkpoints need from a store. Keys are validated relative keys."""

    location: StoreLocation

    def url(self, key: str) -> str:
        """Where a key lives, for messages and results (``/abs/path`` or ``s3://bucket/prefix/key``)."""
        ...

    def write_part(self, key: str, encoded: EncodedState) -> WriteResult:
        """Streams a part to ``key`` atomically and durably, hashing it on the way."""
        ...

    def read_part(self, part: CheckpointPart) -> np.ndarray:
        """A part's bytes (uint8 array), verified against its size and sha256."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Writes a small object whole, atomically and durably (manifests)."""
        ...

    def get(self, key: str) -> bytes | None:
        """A small object's bytes, or None when there is none."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every complete object under ``prefix`` (recursively); temporary files are not listed."""
        ...

    def claim(self, prefix: str) -> bool:
        """Reserves a fresh prefix for one writer; False when something already exists there."""
        ...

    def delete_prefix(self, prefix: str, first: str | None = None) -> None:
        """Deletes everything under ``prefix``, ``first`` before the rest (a manifest, so a half-deleted checkpoint is
        never visible)."""
        ...

    def close(self) -> None: ...


# MARK: locations and keys


def parse_store(
    store: str | os.PathLike[str], *, s3_endpoint: str | None = None, s3_region: str | None = None
) -> StoreLocation:
    """Normalises a store argument: a directory becomes ``file:///absolute/dir``; ``s3://`` keeps its bucket and
    prefix and takes ``s3_endpoint``/``s3_region``. Raises ``ValueError`` saying what is accepted."""
    text = os.fspath(store)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"store must be {ACCEPTED_STORES} (got {store!r})")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "s3":
        bucket, prefix = split_s3_uri(text)
        return StoreLocation(
            uri=f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}",
            endpoint=s3_endpoint or "",
            region=s3_region or "",
        )
    if s3_endpoint or s3_region:
        raise ValueError(f"s3_endpoint and s3_region apply to s3:// stores only (the store is {text!r})")
    if scheme == "file":
        return StoreLocation(uri=f"file://{local_root(text)}")
    if scheme:
        raise ValueError(f"store must be {ACCEPTED_STORES}; the {scheme}:// scheme is not supported (got {text!r})")
    return StoreLocation(uri=f"file://{Path(text).expanduser().resolve()}")


def local_root(uri: str) -> Path:
    """The directory of a ``file:///abs/dir`` URI."""
    parsed = urllib.parse.urlsplit(uri)
    path = urllib.parse.unquote(parsed.path)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost") or not path.startswith("/"):
        raise ValueError(f"a local store must be file:///absolute/dir, with three slashes and no host (got {uri!r})")
    if parsed.query or parsed.fragment:
        raise ValueError(f"a file:// store takes no query or fragment (got {uri!r})")
    return Path(os.path.normpath(path))


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``."""
    rest = uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.fullmatch(bucket):
        raise ValueError(f"S3 bucket names are 3-63 characters of [a-z0-9.-] (got {bucket!r} in {uri!r})")
    if prefix:
        validate_key(prefix, field="the S3 prefix")
    return bucket, prefix


def open_store(location: StoreLocation, *, s3: S3Options | None = None) -> BlobStore:
    """The store at a location (as the constructor or the coordinator gave it)."""
    if location.uri.lower().startswith("s3://"):
        return S3Store(location, s3 or S3Options())
    if location.uri.lower().startswith("file://"):
        return LocalStore(location)
    raise ValueError(f"store must be {ACCEPTED_STORES} (got {location.uri!r})")


# MARK: hashing


class _Sha256Pipeline:
    """sha256 of a byte stream, computed on a helper thread while the caller writes the same chunks.

    hashlib and os.write both release the GIL, so hashing (about 1.8 GB/s per core here) overlaps the I/O instead of
    adding to it. Chunks must stay unchanged until hashed; at most ``depth`` wait in the queue.
    """

    def __init__(self, depth: int = 8) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[memoryview | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dtr-checkpoint-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._hash.update(chunk)
                except BaseException as error:  # reported by hexdigest()
                    self._error = error

    def update(self, chunk: memoryview) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._hash.hexdigest()

    def abandon(self) -> None:
        """Stops the helper thread after a failed write."""
        self._queue.put(None)
        self._thread.join()


def _verify(data: np.ndarray, part: CheckpointPart, where: str) -> np.ndarray:
    if data.nbytes != part.size_bytes:
        raise CheckpointCorrupted(
            f"checkpoint part {where} is {data.nbytes} bytes, its manifest says {part.size_bytes}: it was truncated or "
            "replaced after the commit; load another step"
        )
    digest = hashlib.sha256(data.data).hexdigest()
    if digest != part.sha256.lower():
        raise CheckpointCorrupted(
            f"checkpoint part {where} has sha256 {digest}, its manifest says {part.sha256}: its bytes changed after "
            "the commit; load another step"
        )
    return data


# MARK: local directory


def _sync_file_range() -> Any:
    """Linux's sync_file_range(2), to start writing back dirty pages early; None where unavailable."""
    try:
        function = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


class LocalStore:
    """A checkpoint store in a local (or mounted network) directory."""

    _start_writeback = _sync_file_range()

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self.root = local_root(location.uri)

    def url(self, key: str) -> str:
        return str(self.root / validate_key(key))

    def write_part(self, key: str, encoded: EncodedState) -> WriteResult:
        started = time.perf_counter()
        path = self.root / validate_key(key)
        hasher = _Sha256Pipeline()
        try:
            size = self._write_atomically(path, encoded.chunks(), hasher)
        except BaseException:
            hasher.abandon()
            raise
        return WriteResult(size, hasher.hexdigest(), time.perf_counter() - started)

    def put(self, key: str, data: bytes) -> None:
        self._write_atomically(self.root / validate_key(key), iter([memoryview(data)]), None)

    def _write_atomically(self, path: Path, chunks: Iterator[memoryview], hasher: _Sha256Pipeline | None) -> int:
        self._make_dirs(path.parent)
        temporary = path.with_name(f"{path.name}.tmp-{secrets.token_hex(8)}")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                size = self._write_chunks(fd, chunks, hasher)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, path)
            _fsync_dir(path.parent)
            return size
        except OSError as error:
            _unlink_quietly(temporary)
            raise CheckpointStorageError(
                f"cannot write {path}: {error.strerror or error}; check free space and permissions under {self.root}"
            ) from error
        except BaseException:
            _unlink_quietly(temporary)
            raise

    def _write_chunks(self, fd: int, chunks: Iterator[memoryview], hasher: _Sha256Pipeline | None) -> int:
        written = flushed = 0
        for chunk in chunks:
            if hasher is not None:
                hasher.update(chunk)
            view = chunk
            while view:
                view = view[os.write(fd, view) :]
            written += len(chunk)
            # Start writing back what is written so far without waiting for it, so the final fsync finds little left
            # (a plain write-then-fsync leaves the whole part dirty until the end).
            if self._start_writeback is not None and written - flushed >= _WRITEBACK_BYTES:
                self._start_writeback(fd, flushed, written - flushed, 2)  # SYNC_FILE_RANGE_WRITE
                flushed = written
        return written

    def _make_dirs(self, directory: Path) -> None:
        """Creates missing directories up from the root, fsyncing each new one's parent so the entry is durable."""
        missing = []
        for candidate in (directory, *directory.parents):
            if candidate.is_dir():
                break
            missing.append(candidate)
        for candidate in reversed(missing):
            try:
                candidate.mkdir()
            except FileExistsError:
                if candidate.is_dir():  # created meanwhile by a concurrent save
                    continue
                raise CheckpointStorageError(
                    f"cannot create {candidate}: a file is in the way; remove it or choose another store"
                ) from None
            except OSError as error:
                raise CheckpointStorageError(
                    f"cannot create {candidate}: {error.strerror or error}; check the permissions of {self.root}"
                ) from error
            _fsync_dir(candidate.parent)

    def read_part(self, part: CheckpointPart) -> np.ndarray:
        path = self.root / validate_key(part.object_key)
        try:
            with open(path, "rb", buffering=0) as file:
                size = os.fstat(file.fileno()).st_size
                if size != part.size_bytes:
                    raise CheckpointCorrupted(
                        f"checkpoint part {path} is {size} bytes, its manifest says {part.size_bytes}: it was "
                        "truncated or replaced after the commit; load another step"
                    )
                data = np.empty(size, dtype=np.uint8)
                view = data.data
                hasher = _Sha256Pipeline()
                try:
                    position = 0
                    while position < size:
                        count = file.readinto(view[position : position + _READ_CHUNK])
                        if not count:
                            break
                        hasher.update(view[position : position + count])
                        position += count
                finally:
                    digest = hasher.hexdigest()
        except FileNotFoundError as error:
            raise CheckpointCorrupted(
                f"checkpoint part {path} is missing although its manifest exists: it was deleted after the commit; "
                "load another step"
            ) from error
        except OSError as error:
            raise CheckpointStorageError(f"cannot read {path}: {error.strerror or error}") from error
        if position != size:
            raise CheckpointCorrupted(f"checkpoint part {path} shrank while it was read")
        if digest != part.sha256.lower():
            raise CheckpointCorrupted(
                f"checkpoint part {path} has sha256 {digest}, its manifest says {part.sha256}: its bytes changed after "
                "the commit; load another step"
            )
        return data

    def get(self, key: str) -> bytes | None:
        path = self.root / validate_key(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise CheckpointStorageError(f"cannot read {path}: {error.strerror or error}") from error

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / validate_key(prefix)
        keys: list[str] = []
        for directory, _, files in os.walk(base):
            relative = Path(directory).relative_to(self.root).as_posix()
            keys.extend(f"{relative}/{name}" for name in files if ".tmp-" not in name)
        return sorted(keys)

    def claim(self, prefix: str) -> bool:
        path = self.root / validate_key(prefix)
        self._make_dirs(path.parent)
        try:
            path.mkdir()
        except FileExistsError:
            return False
        except OSError as error:
            raise CheckpointStorageError(f"cannot create {path}: {error.strerror or error}") from error
        _fsync_dir(path.parent)
        return True

    def delete_prefix(self, prefix: str, first: str | None = None) -> None:
        path = self.root / validate_key(prefix)
        try:
            if first is not None:
                _unlink_quietly(self.root / validate_key(first))
                _fsync_dir((self.root / first).parent)
            shutil.rmtree(path, ignore_errors=True)
            _fsync_dir(path.parent)
        except OSError as error:
            raise CheckpointStorageError(f"cannot delete {path}: {error.strerror or error}") from error

    def close(self) -> None:
        pass


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: Path) -> None:
    """Best-effort cleanup: the error that made us clean up is the one to report."""
    with contextlib.suppress(OSError):
        os.unlink(path)


# MARK: S3


class S3Store:
    """A checkpoint store in an S3 bucket (AWS or any S3-compatible server), through boto3 with path-style addressing.

    Credentials come from this process's environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, or boto3's
    other usual sources); the endpoint and region from the location.
    """

    def __init__(self, location: StoreLocation, options: S3Options) -> None:
        try:
            import boto3  # noqa: PLC0415 - optional: only S3 stores need it
            from boto3.s3.transfer import TransferConfig  # noqa: PLC0415
            from botocore.config import Config  # noqa: PLC0415
        except ImportError as error:
            raise CheckpointStorageError(
                f"the checkpoint store {location.uri} is in S3, which needs boto3: pip install 'dtruntime[s3]'"
            ) from error
        self.location = location
        self.bucket, self.prefix = split_s3_uri(location.uri)
        self._options = options
        config = Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": options.max_attempts, "mode": "standard"},
            max_pool_connections=options.max_concurrency + 4,
            connect_timeout=10,
            read_timeout=120,
        )
        # A session of our own: boto3's module-level default session is global state shared with the application.
        session = boto3.session.Session()
        self._client = session.client(
            "s3", endpoint_url=location.endpoint or None, region_name=location.region or None, config=config
        )
        self._transfer = TransferConfig(
            multipart_threshold=options.multipart_threshold,
            multipart_chunksize=options.multipart_chunksize,
            max_concurrency=options.max_concurrency,
            use_threads=True,
        )

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def write_part(self, key: str, encoded: EncodedState) -> WriteResult:
        started = time.perf_counter()
        hasher = _Sha256Pipeline()
        reader = _ChunkReader(encoded.chunks(), hasher)
        try:
            self._client.upload_fileobj(_as_file(reader), self.bucket, self._key(key), Config=self._transfer)
        except Exception as error:
            hasher.abandon()
            raise self._error(error, "upload", key) from error
        except BaseException:
            hasher.abandon()
            raise
        if reader.position != encoded.size:
            hasher.abandon()
            raise CheckpointStorageError(f"S3 upload of {self.url(key)} sent {reader.position} of {encoded.size} bytes")
        return WriteResult(reader.position, hasher.hexdigest(), time.perf_counter() - started)

    def read_part(self, part: CheckpointPart) -> np.ndarray:
        key = self._key(part.object_key)
        try:
            size = int(self._client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except Exception as error:
            if _s3_code(error) in ("404", "NoSuchKey", "NotFound"):
                raise CheckpointCorrupted(
                    f"checkpoint part {self.url(part.object_key)} is missing although its manifest exists: it was "
                    "deleted after the commit; load another step"
                ) from error
            raise self._error(error, "read", part.object_key) from error
        if size != part.size_bytes:
            raise CheckpointCorrupted(
                f"checkpoint part {self.url(part.object_key)} is {size} bytes, its manifest says {part.size_bytes}: it "
                "was truncated or replaced after the commit; load another step"
            )
        data = np.empty(size, dtype=np.uint8)
        try:
            self._client.download_fileobj(self.bucket, key, _as_file(_BufferWriter(data)), Config=self._transfer)
        except Exception as error:
            raise self._error(error, "download", part.object_key) from error
        return _verify(data, part, self.url(part.object_key))

    def put(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as error:
            raise self._error(error, "upload", key) from error

    def get(self, key: str) -> bytes | None:
        try:
            reply = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            return bytes(reply["Body"].read())
        except Exception as error:
            if _s3_code(error) in ("NoSuchKey", "404", "NotFound"):
                return None
            raise self._error(error, "read", key) from error

    def list_keys(self, prefix: str) -> list[str]:
        full = self._key(prefix) + "/"
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                keys.extend(item["Key"][strip:] for item in page.get("Contents", ()))
        except Exception as error:
            raise self._error(error, "listing", prefix) from error
        return sorted(keys)

    def claim(self, prefix: str) -> bool:
        # S3 has no portable exclusive create: a standalone store assumes one writer per task (docs/CHECKPOINTS.md).
        return not self.list_keys(prefix)

    def delete_prefix(self, prefix: str, first: str | None = None) -> None:
        try:
            if first is not None:
                self._client.delete_object(Bucket=self.bucket, Key=self._key(first))
            keys = [self._key(key) for key in self.list_keys(prefix)]
            for start in range(0, len(keys), 1000):
                batch: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys[start : start + 1000]]
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        except CheckpointStorageError:
            raise
        except Exception as error:
            raise self._error(error, "delete", prefix) from error

    def close(self) -> None:
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    def _error(self, error: Exception, action: str, key: str) -> CheckpointStorageError:
        endpoint = self.location.endpoint or "AWS's default endpoint"
        code = _s3_code(error)
        kind = type(error).__name__
        if code == "NoSuchBucket":
            hint = f"bucket {self.bucket!r} does not exist at {endpoint}: create it, or fix the store URI"
        elif code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden") or code in (
            "ExpiredToken",
            "InvalidToken",
        ):
            hint = (
                f"{endpoint} refused the credentials ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
                f"AWS_SESSION_TOKEN) in this process's environment, and that they may use bucket {self.bucket!r}"
            )
        elif kind in ("NoCredentialsError", "PartialCredentialsError"):
            hint = "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in this process's environment"
        elif kind in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError", "ReadTimeoutError"):
            hint = f"cannot reach the S3 endpoint {endpoint}: check the endpoint URL and that the server is up"
        else:
            hint = f"check the endpoint ({endpoint}), the credentials and the bucket {self.bucket!r}"
        return CheckpointStorageError(f"S3 {action} of {self.url(key)} failed: {hint} ({kind}: {error})")


def _s3_code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _as_file(raw: io.RawIOBase) -> IO[bytes]:
    """A raw stream as the binary file boto3's transfers take: they call only read, write, seek and tell, which
    ``io.RawIOBase`` has (its typing does not say it is an ``IO[bytes]``, which is a protocol of more methods)."""
    return cast(IO[bytes], raw)


class _ChunkReader(io.RawIOBase):
    """A non-seekable file over a part's chunks (what boto3's upload_fileobj reads); feeds the hasher as it goes."""

    def __init__(self, chunks: Iterator[memoryview], hasher: _Sha256Pipeline) -> None:
        super().__init__()
        self._chunks = chunks
        self._hasher = hasher
        self._current = memoryview(b"")
        self.position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes with a single copy (boto3 reads whole parts this way; io.RawIOBase's default read
        would copy twice)."""
        wanted = (1 << 62) if size is None or size < 0 else size
        pieces = []
        while wanted > 0:
            if not self._current:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._hasher.update(chunk)
                self._current = chunk
            piece = self._current[:wanted]
            pieces.append(piece)
            self._current = self._current[len(piece) :]
            wanted -= len(piece)
        data = pieces[0].tobytes() if len(pieces) == 1 else b"".join(pieces)
        self.position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            if not self._current:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._hasher.update(chunk)
                self._current = chunk
            count = min(len(target) - filled, len(self._current))
            target[filled : filled + count] = self._current[:count]
            self._current = self._current[count:]
            filled += count
        self.position += filled
        return filled


class _BufferWriter(io.RawIOBase):
    """A seekable file over a preallocated array, so boto3 downloads ranges in parallel straight into it."""

    def __init__(self, data: np.ndarray) -> None:
        super().__init__()
        self._view = data.data
        self._position = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def write(self, data: Any) -> int:
        source = memoryview(data).cast("B")
        end = self._position + len(source)
        if end > len(self._view):
            raise CheckpointCorrupted(f"the object grew past its {len(self._view)} announced bytes while downloading")
        self._view[self._position : end] = source
        self._position = end
        return len(source)

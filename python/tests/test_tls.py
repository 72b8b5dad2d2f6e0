"""TLS against the real coordinator: both servers with a certificate made at test time (openssl), the SDK verifying
it with the CA file; a plaintext client cannot talk to it."""

from __future__ import annotations

import http.client
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import FAST
from dtruntime import CoordinatorUnavailable, LocalCoordinator, TrainingOrchestrator, Worker


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 signed by it."""
    ca_key, ca, key, request, cert = (
        directory / name for name in ("ca.key", "ca.pem", "key.pem", "req.csr", "cert.pem")
    )
    extensions = directory / "san.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "1",
        "-subj",
        "/CN=dtr test CA",
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(request), "-subj", "/CN=127.0.0.1")
    openssl(
        "x509",
        "-req",
        "-in",
        str(request),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "1",
        "-extfile",
        str(extensions),
    )
    return ca, cert, key


def test_both_servers_speak_tls_and_the_sdk_verifies_the_certificate(dtr_binary, tmp_path, monkeypatch):
    ca, cert, key = make_certificates(tmp_path)
    with LocalCoordinator(
        dtr_binary, data_dir=tmp_path / "data", args=[*FAST, "--tls-cert", str(cert), "--tls-key", str(key)], ca_file=ca
    ) as coordinator:
        assert coordinator.http_url.startswith("https://")
        assert coordinator.get_json("/api/health")["status"] == "ok"
        with pytest.raises((urllib.error.URLError, http.client.HTTPException, ConnectionError)):  # plain HTTP to TLS
            urllib.request.urlopen(f"http://127.0.0.1:{coordinator.http_port}/api/health", timeout=5)

        monkeypatch.delenv("DTR_CA_FILE", raising=False)
        with pytest.raises(CoordinatorUnavailable):  # plaintext gRPC to a TLS port
            TrainingOrchestrator(coordinator.grpc_address, timeout=3).register_worker("plain", "127.0.0.1", 7000)

        monkeypatch.setenv("DTR_CA_FILE", str(ca))
        with Worker(coordinator.grpc_address, "secure") as worker:  # unary calls and the session stream
            worker.wait_for(lambda view: view.rank == 0, timeout=10)
        assert [w["worker_id"] for w in coordinator.get_json("/api/workers")["workers"]] == ["secure"]


def test_unreadable_certificates_are_explained(dtr_binary, tmp_path):
    missing = tmp_path / "missing.pem"
    command = [dtr_binary, "serve", "--grpc-port", "0", "--http-port", "0", "--data-dir", str(tmp_path / "d")]
    result = subprocess.run(
        [*command, "--tls-cert", str(missing), "--tls-key", str(missing)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and f"cannot read --tls-cert {missing}" in result.stderr
    result = subprocess.run(
        [*command, "--tls-cert", str(missing)], check=False, capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0 and "--tls-cert and --tls-key go together" in result.stderr

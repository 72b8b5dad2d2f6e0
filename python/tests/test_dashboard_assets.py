"""The dashboard's files compiled into the coordinator: scripts/embed-dashboard.py turns dashboard/dist into
Sources/Coordinator/Dashboard/DashboardBundle+Files.swift (the committed copy must be what the script makes of the
committed dist), and the real binary serves them with their content types, strong ETags, 304s and caching, from any
working directory, and without the admin token (the rest of /api keeps needing it)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import FAST, REPO
from dtruntime import LocalCoordinator

SCRIPT = REPO / "scripts" / "embed-dashboard.py"
DIST = REPO / "dashboard" / "dist"
GENERATED = REPO / "Sources" / "Coordinator" / "Dashboard" / "DashboardBundle+Files.swift"
TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.js.map": "application/json; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
ADMIN_TOKEN = "assets-admin-token-0123456789"


def embed(dist: Path, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), "--dist", str(dist), "--output", str(output), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def embedded(source: str) -> dict[str, dict]:
    """The files a generated source declares: name -> size, sha256, bytes (decoded chunk by chunk)."""
    files = {}
    pattern = r'File\(\s*name: "([^"]+)", size: (\d+),\s*sha256: "([0-9a-f]{64})",\s*base64: \[(.*?)\]\)'
    for name, size, sha256, chunks in re.findall(pattern, source, re.DOTALL):
        parts = re.findall(r'"([A-Za-z0-9+/=]*)"', chunks)
        assert all(len(part) % 4 == 0 for part in parts), "each chunk decodes on its own"
        files[name] = {
            "size": int(size),
            "sha256": sha256,
            "bytes": b"".join(base64.b64decode(part) for part in parts),
            "chunks": len(parts),
        }
    return files


def get(base_url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_the_committed_source_is_what_the_script_makes_of_the_committed_dist(tmp_path):
    fresh = tmp_path / "fresh.swift"
    result = embed(DIST, fresh)
    assert result.returncode == 0, result.stderr
    assert fresh.read_text() == GENERATED.read_text(), (
        "Sources/Coordinator/Dashboard/DashboardBundle+Files.swift is stale: run scripts/embed-dashboard.py"
    )
    assert embed(DIST, GENERATED, "--check").returncode == 0
    if DIST.exists():
        files = embedded(GENERATED.read_text())
        assert set(files) == {path.name for path in DIST.iterdir()}
        for name, file in files.items():
            assert file["bytes"] == (DIST / name).read_bytes()
    else:
        assert "static let files: [File] = []" in GENERATED.read_text()


def test_the_script_embeds_a_dist_exactly_and_deterministically(tmp_path):
    dist = tmp_path / "dist"
    dist.mkdir()
    contents = {
        "index.html": b'<!doctype html><script src="./app.js?v=0"></script>\n',
        "app.js": bytes(range(256)) * 200,  # every byte value, and more than one chunk
        "app.css": b"body{color:red}",
        "app.js.map": b"",
    }
    for name, data in contents.items():
        (dist / name).write_bytes(data)
    first, second = tmp_path / "a.swift", tmp_path / "b.swift"
    assert embed(dist, first).returncode == 0 and embed(dist, second).returncode == 0
    assert first.read_bytes() == second.read_bytes(), "deterministic"
    source = first.read_text()
    assert "// swift-format-ignore-file" in source and "do not edit" in source
    files = embedded(source)
    assert list(files) == sorted(contents), "sorted by name"
    for name, data in contents.items():
        assert files[name]["bytes"] == data and files[name]["size"] == len(data)
        assert files[name]["sha256"] == hashlib.sha256(data).hexdigest()
    assert files["app.js"]["chunks"] > 1
    # --check tells a stale output from a current one.
    assert embed(dist, first, "--check").returncode == 0
    (dist / "app.css").write_bytes(b"body{color:blue}")
    stale = embed(dist, first, "--check")
    assert stale.returncode == 1 and "run the script" in stale.stderr
    # What the coordinator would not serve is refused; a dist without index.html too; no dist: no files.
    (dist / "favicon.ico").write_bytes(b"x")
    refused = embed(dist, tmp_path / "c.swift")
    assert refused.returncode != 0 and "favicon.ico" in refused.stderr and not (tmp_path / "c.swift").exists()
    (dist / "favicon.ico").unlink()
    (dist / "index.html").unlink()
    assert "no index.html" in embed(dist, tmp_path / "d.swift").stderr
    assert embed(tmp_path / "missing", tmp_path / "e.swift").returncode == 0
    assert embedded((tmp_path / "e.swift").read_text()) == {}


@pytest.fixture
def elsewhere(dtr_binary, tmp_path, monkeypatch):
    """A coordinator started from an unrelated working directory (the assets come from the binary, not the disk)."""
    binary = str(Path(dtr_binary).resolve())
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    started: list[LocalCoordinator] = []

    def start(*args: str) -> LocalCoordinator:
        coordinator = LocalCoordinator(binary, data_dir=tmp_path / f"data{len(started)}", args=[*FAST, *args])
        started.append(coordinator.start())
        return coordinator

    yield start
    for coordinator in started:
        coordinator.kill()


@pytest.mark.skipif(not DIST.exists(), reason="no dashboard/dist committed: see the test for an absent bundle")
def test_the_coordinator_serves_the_bundle_with_types_etags_and_caching(elsewhere):
    coordinator = elsewhere()
    for path, name in [("/", "index.html"), ("/index.html", "index.html"), ("/app.js", "app.js"),
                       ("/app.css", "app.css"), ("/app.js.map", "app.js.map")]:  # fmt: skip
        data = (DIST / name).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        status, headers, body = get(coordinator.http_url, path)
        assert status == 200 and body == data, path
        assert headers["content-type"] == TYPES[name] and headers["etag"] == f'"{digest}"'
        assert headers["cache-control"] == "no-cache" and headers["x-content-type-options"] == "nosniff"
        # A revalidation with the ETag (strong or weak, alone or in a list) is a 304 without a body.
        for tag in [f'"{digest}"', f'W/"{digest}"', f'"other", "{digest}"', "*"]:
            status, headers, body = get(coordinator.http_url, path, {"If-None-Match": tag})
            assert status == 304 and body == b"" and headers["etag"] == f'"{digest}"', (path, tag)
        status, _, body = get(coordinator.http_url, path, {"If-None-Match": '"stale"'})
        assert status == 200 and body == data
        # Immutable caching only for the ?v= of this very file (what index.html asks for); never for index.html.
        status, headers, _ = get(coordinator.http_url, f"{path}?v={digest[:12]}")
        expected = "no-cache" if name == "index.html" else "public, max-age=31536000, immutable"
        assert status == 200 and headers["cache-control"] == expected, path
        status, headers, _ = get(coordinator.http_url, f"{path}?v=000000000000")
        assert headers["cache-control"] == "no-cache", "a stale ?v= must not be cached for a year"
    index = (DIST / "index.html").read_text()
    for name in ("app.js", "app.css"):
        version = hashlib.sha256((DIST / name).read_bytes()).hexdigest()[:12]
        assert f"./{name}?v={version}" in index, f"index.html references {name} by its current hash"
    status, _, body = get(coordinator.http_url, "/favicon.ico")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"


@pytest.mark.skipif(DIST.exists(), reason="a dashboard is built: the bundle test covers it")
def test_without_a_bundle_the_page_says_how_to_build_it(elsewhere):
    coordinator = elsewhere()
    for path in ["/", "/index.html", "/app.js"]:
        status, headers, body = get(coordinator.http_url, path)
        assert status == 404 and headers["content-type"] == "application/json; charset=utf-8"
        message = json.loads(body)["error"]["message"]
        assert "not built into this binary" in message and "make dashboard" in message, message
    assert get(coordinator.http_url, "/api/health")[0] == 200


def test_static_files_need_no_token_but_the_api_does(elsewhere):
    coordinator = elsewhere("--admin-token", ADMIN_TOKEN)
    expected = 200 if DIST.exists() else 404
    for path in ["/", "/index.html", "/app.js", "/app.css", "/app.js.map"]:
        assert get(coordinator.http_url, path)[0] == expected, path
    for path in ["/api/workers", "/api/dashboard", "/api/tasks/x/metrics", "/metrics", "//api//workers"]:
        status, _, body = get(coordinator.http_url, path)
        assert status == 401 and json.loads(body)["error"]["code"] == "unauthenticated", path
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert get(coordinator.http_url, "/api/workers", auth)[0] == 200
    assert get(coordinator.http_url, "//api//workers", auth)[0] == 200, "the router skips empty components"

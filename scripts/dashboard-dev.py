#!/usr/bin/env python3
"""Serves dashboard/dist from disk and forwards /api and /metrics to a running coordinator, for working on the
dashboard without rebuilding `dtr` (which embeds the bundle): rebuild with `make dashboard`, reload the page.

    scripts/dashboard-dev.py --coordinator http://127.0.0.1:51051 --port 8080

A development tool only: the product is the page `dtr serve` serves itself.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import mimetypes
import urllib.parse
from pathlib import Path

DIST = Path(__file__).resolve().parents[1] / "dashboard" / "dist"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


def make_handler(coordinator: urllib.parse.SplitResult) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._route()

        def do_POST(self) -> None:
            self._route()

        def _route(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path.startswith("/api/") or path == "/metrics":
                self._forward()
            else:
                self._static(path)

        def _static(self, path: str) -> None:
            name = "index.html" if path in ("/", "") else path.lstrip("/")
            file = (DIST / name).resolve()
            if DIST not in file.parents or not file.is_file():
                self.send_error(404)
                return
            body = file.read_bytes()
            self.send_response(200)
            content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            self.send_header(
                "Content-Type", content_type + ("; charset=utf-8" if content_type.startswith("text") else "")
            )
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "host"}
            connection = http.client.HTTPConnection(coordinator.hostname, coordinator.port, timeout=3600)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
            except OSError as error:
                self.send_error(502, f"coordinator unreachable: {error}")
                return
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                # read1 returns what has arrived: server-sent events pass through as they come.
                while chunk := response.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            finally:
                connection.close()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coordinator", default="http://127.0.0.1:51051", help="the coordinator's HTTP URL")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", args.port), make_handler(urllib.parse.urlsplit(args.coordinator))
    )
    print(f"dashboard (dev): http://127.0.0.1:{server.server_address[1]}/ -> {args.coordinator}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

"""The runtime's ``keepalive=false`` mount option: the benchmark's no-pooling baseline.

A counting HTTP/1.1 server on a Unix socket shows how many connections the
runtime's client really opens; the connector has no such counter.
"""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from asya_state_runtime import transport
from asya_state_runtime.config import MountConfigError, parse_mounts


class _Counting(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    connections = 0


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Counting]:
    counting = _Counting(str(tmp_path / "s.sock"), _Ok)
    thread = threading.Thread(target=counting.serve_forever, daemon=True)
    thread.start()
    yield counting
    counting.shutdown()
    counting.server_close()


def _three_requests(spec: str, socket_dir: str) -> None:
    (mount,) = parse_mounts(spec, socket_dir)
    pool = transport.Pool(mount)
    try:
        for _ in range(3):
            reply = transport.request(pool, "GET", "/v1/info", path="/state/x")
            assert (reply.status, reply.read_all()) == (200, b"ok")
    finally:
        pool.close()


def test_pooled_mount_reuses_one_connection(server: _Counting, tmp_path: Path) -> None:
    _three_requests("s:/state", str(tmp_path))
    assert server.connections == 1


def test_keepalive_false_opens_one_connection_per_request(
    server: _Counting, tmp_path: Path
) -> None:
    _three_requests("s:/state:keepalive=false", str(tmp_path))
    assert server.connections == 3


def test_keepalive_option_values() -> None:
    assert parse_mounts("s:/state")[0].keepalive is True
    assert parse_mounts("s:/state:keepalive=true")[0].keepalive is True
    assert parse_mounts("s:/state:keepalive=false,write=passthrough")[0].keepalive is False
    with pytest.raises(MountConfigError, match=r"entry 1 .*keepalive='off' must be true or false"):
        parse_mounts("s:/state:keepalive=off")

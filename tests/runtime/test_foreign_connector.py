"""A mount whose socket is served by something that does not speak this protocol.

An upstream Asya connector image used verbatim speaks another protocol: an
HTTP/1.0 server with one connection per operation and keys under
``/keys/``, whose answers to our ``/v1/`` paths are HTML error pages. The
handler must get a ConnectionError with EPROTO that names the mount path,
the socket and what answered, never a FileNotFoundError (which "load or
start fresh" code would take for missing state) or an obscure parse error;
the same for a peer that answers with something that is not HTTP at all.
"""

from __future__ import annotations

import errno
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

import asya_state_runtime
from asya_state_cli.commands.probe import check


class UpstreamHandler(BaseHTTPRequestHandler):
    """What the upstream connector does, as the seeds describe it: ``/keys/<key>`` over HTTP/1.0."""

    store: dict[str, bytes] = {}
    any_path = False  # take any path for a key, not only /keys/<key>

    def _key(self) -> str | None:
        if self.path.startswith("/keys/"):
            return self.path[len("/keys/") :]
        return self.path.lstrip("/") if self.any_path else None

    def do_GET(self) -> None:
        key = self._key()
        if key is None or key not in self.store:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.store[key])))
        self.end_headers()
        self.wfile.write(self.store[key])

    def do_HEAD(self) -> None:
        key = self._key()
        if key is None or key not in self.store:
            self.send_error(404)
            return
        self.send_response(200)
        self.end_headers()

    def do_PUT(self) -> None:
        key = self._key()
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if key is None:
            self.send_error(404)
            return
        self.store[key] = body
        self.send_response(200)
        self.end_headers()

    def do_DELETE(self) -> None:
        key = self._key()
        if key is None or self.store.pop(key, None) is None:
            self.send_error(404)
            return
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class UnixHttpServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the runtime hangs up on a foreign answer before reading its body: a broken pipe here


def speak_garbage(listener: socket.socket) -> None:
    """Answer every connection with a line that is not HTTP, then keep it open."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.sendall(b"+OK redis ready\r\n")  # and never an HTTP status line, nor a close


Start = Callable[[str], Path]


@pytest.fixture
def peer() -> Iterator[Start]:
    """Start a foreign peer ("upstream" or "garbage") on the socket of mount ``state``."""
    stops: list[Callable[[], None]] = []
    with tempfile.TemporaryDirectory(prefix="asya-foreign-", dir="/tmp") as sockets:

        def start(kind: str) -> Path:
            path = Path(sockets) / "state.sock"
            if kind in ("upstream", "permissive"):
                UpstreamHandler.store = {}
                UpstreamHandler.any_path = kind == "permissive"
                server = UnixHttpServer(str(path), UpstreamHandler)
                threading.Thread(target=server.serve_forever, daemon=True).start()
                stops.append(server.shutdown)
                stops.append(server.server_close)
            else:
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listener.bind(str(path))
                listener.listen(16)
                threading.Thread(target=speak_garbage, args=(listener,), daemon=True).start()
                stops.append(listener.close)
            asya_state_runtime.install("state:/state:timeout=30", socket_dir=sockets)
            stops.insert(0, asya_state_runtime.uninstall)
            return path

        yield start
        for stop in stops:
            stop()


def assert_foreign(caught: pytest.ExceptionInfo[ConnectionError], socket_path: Path) -> str:
    exc = caught.value
    assert exc.errno == errno.EPROTO, exc
    assert not isinstance(exc, FileNotFoundError)
    message = str(exc)
    assert "the connector at /state " in message, message
    assert str(socket_path) in message, message
    assert "does not speak asya-state protocol v1" in message, message
    return message


def test_an_upstream_connector_is_named_not_taken_for_missing_state(peer: Start) -> None:
    socket_path = peer("upstream")
    with pytest.raises(ConnectionError) as caught:
        open("/state/history.json").close()
    message = assert_foreign(caught, socket_path)
    assert "HTTP/1.0 404" in message, message  # what it found
    assert caught.value.filename == "/state/history.json"

    # The os.path predicates do not answer "nothing there" for it either.
    with pytest.raises(ConnectionError) as caught:
        os.path.exists("/state/history.json")
    assert_foreign(caught, socket_path)

    with pytest.raises(ConnectionError) as caught, open("/state/history.json", "w") as f:
        f.write("[]")
    assert_foreign(caught, socket_path)
    assert UpstreamHandler.store == {}  # nothing stored under any name

    with pytest.raises(ConnectionError) as caught:
        os.listdir("/state")
    assert_foreign(caught, socket_path)


def test_an_upstream_that_takes_any_path_is_named_too(peer: Start) -> None:
    """Its 200s lack what every answer about an object carries: no write or read passes for done."""
    socket_path = peer("permissive")
    with pytest.raises(ConnectionError) as caught, open("/state/history.json", "w") as f:
        f.write("[]")
    assert_foreign(caught, socket_path)
    assert list(UpstreamHandler.store) == ["v1/objects/history.json"]  # stored under its own name
    with pytest.raises(ConnectionError) as caught:
        open("/state/history.json").close()
    assert "X-Asya-Size" in assert_foreign(caught, socket_path)
    with pytest.raises(ConnectionError) as caught:
        os.path.isfile("/state/history.json")
    assert_foreign(caught, socket_path)


def test_the_probe_reports_a_foreign_connector_unhealthy(peer: Start) -> None:
    socket_path = peer("upstream")
    healthy, detail = check(str(socket_path), ready=False, timeout=5.0)
    assert not healthy
    assert "does not speak asya-state protocol v1" in detail, detail


def test_a_peer_that_is_not_http_is_named_at_once(peer: Start) -> None:
    socket_path = peer("garbage")
    for call in (
        lambda: open("/state/history.json").close(),
        lambda: os.path.exists("/state/history.json"),
        lambda: os.remove("/state/history.json"),
    ):
        # The mount's timeout is 30 s: a peer told apart only by a timeout would be ETIMEDOUT.
        with pytest.raises(ConnectionError) as caught:
            call()
        message = assert_foreign(caught, socket_path)
        assert "+OK redis ready" in message, message

"""The transport against scripted peers: what no well-behaved connector does on demand.

Each peer is a thread on a real Unix socket that serves every connection
with a script (answer, drop, stall, answer early, send junk), so the
client's retries, failures, timeouts and connection reuse can be checked
exactly, together with what it put on the wire.
"""

from __future__ import annotations

import errno
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from asya_state_runtime import transport
from asya_state_runtime.config import Mount

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
Script = Callable[["Peer", socket.socket, BinaryIO, int], None]
Serve = Callable[..., tuple["Peer", transport.Pool]]


def read_request(stream: BinaryIO) -> tuple[bytes, bytes]:
    """The head and body of the next request on ``stream``; (b"", b"") at end of stream."""
    head = b""
    while (line := stream.readline()) not in (b"\r\n", b""):
        head += line
    if not head:
        return b"", b""
    fields = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)
    }
    if fields.get(b"transfer-encoding") == b"chunked":
        body = b""
        while size := int(stream.readline().split(b";")[0], 16):
            body += stream.read(size)
            stream.readline()
        stream.readline()
        return head, body
    return head, stream.read(int(fields.get(b"content-length", b"0")))


class Peer:
    """A Unix-socket listener serving connection number ``n`` (from 1) with ``script``."""

    def __init__(self, path: Path, script: Script) -> None:
        self.path = path
        self.script = script
        self.connections = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.release = threading.Event()  # lets a stalling script finish
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn, conn.makefile("rb") as stream:
            self.script(self, conn, stream, number)

    def next_request(self, stream: BinaryIO) -> bool:
        head, body = read_request(stream)
        if head:
            self.heads.append(head)
            self.bodies.append(body)
        return bool(head)

    @property
    def methods(self) -> list[str]:
        return [head.split(b" ", 1)[0].decode() for head in self.heads]

    def close(self) -> None:
        self.release.set()
        self.listener.close()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="asya-tw-", dir="/tmp") as directory:
        yield Path(directory)


@pytest.fixture
def serve(socket_dir: Path) -> Iterator[Serve]:
    peers: list[Peer] = []
    pools: list[transport.Pool] = []

    def start(script: Script, **options: object) -> tuple[Peer, transport.Pool]:
        peer = Peer(socket_dir / f"p{len(peers)}.sock", script)
        peers.append(peer)
        pool = transport.Pool(Mount("p", "/p", str(peer.path), **options))  # type: ignore[arg-type]
        pools.append(pool)
        return peer, pool

    yield start
    for pool in pools:
        pool.close()
    for peer in peers:
        peer.close()


def get(pool: transport.Pool, method: str = "GET", body: bytes | None = None) -> bytes:
    reply = transport.request(pool, method, "/v1/objects/k", path="/p/k", body=body)
    assert reply.status == 200
    return reply.read_all()


def answer_once_then_drop(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
    """The first connection answers one request; every later request is read and dropped."""
    if number == 1 and peer.next_request(stream):
        conn.sendall(OK)
    peer.next_request(stream)


def test_a_stale_pooled_connection_is_retried_once_for_get_but_not_for_put(serve: Serve) -> None:
    peer, pool = serve(answer_once_then_drop)
    assert get(pool) == b"ok"
    # The pooled connection is dropped under the next GET; its retry meets a
    # fresh connection that is dropped as well, and that is not retried again.
    with pytest.raises(ConnectionError, match="was lost") as caught:
        get(pool)
    assert caught.value.errno == errno.ECONNRESET
    assert caught.value.filename == "/p/k"
    assert peer.connections == 2
    assert peer.methods == ["GET", "GET", "GET"]


def answer_twice_then_drop(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
    for _ in range(2):
        if peer.next_request(stream):
            conn.sendall(OK)
    peer.next_request(stream)


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("HEAD", True), ("PUT", False)])
def test_only_idempotent_requests_are_replayed(serve: Serve, method: str, retried: bool) -> None:
    peer, pool = serve(answer_twice_then_drop)
    assert get(pool) == b"ok"
    assert get(pool) == b"ok"
    reply_body = b"" if method == "HEAD" else b"ok"
    if retried:
        assert get(pool, method) == reply_body
        assert peer.connections == 2
    else:
        with pytest.raises(ConnectionError, match="was lost"):
            get(pool, method, body=b"data")
        assert peer.connections == 1
    assert peer.methods == ["GET", "GET", method] + ([method] if retried else [])


def cut_mid_body(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
    peer.next_request(stream)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")


@pytest.mark.parametrize("how", ["read_all", "readinto"])
def test_a_connection_closed_mid_body_is_a_lost_connection(serve: Serve, how: str) -> None:
    _, pool = serve(cut_mid_body)
    reply = transport.request(pool, "GET", "/v1/objects/k", path="/p/k")
    assert reply.remaining == 100

    def read_in_steps() -> None:
        buffer = memoryview(bytearray(64))
        while reply.readinto(buffer):
            pass

    with pytest.raises(ConnectionError, match="was lost") as caught:
        (reply.read_all if how == "read_all" else read_in_steps)()
    assert caught.value.errno == errno.ECONNRESET
    assert caught.value.filename == "/p/k"
    assert pool._idle == []


def stall_mid_body(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
    peer.next_request(stream)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
    peer.release.wait(10)


def test_a_stalled_body_times_out_with_the_mount_timeout(serve: Serve) -> None:
    _, pool = serve(stall_mid_body, timeout=0.3)
    reply = transport.request(pool, "GET", "/v1/objects/k", path="/p/k")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not answer within 0\.3s") as caught:
        reply.read_all()
    assert 0.25 < time.monotonic() - started < 5
    assert caught.value.filename == "/p/k"
    assert pool._idle == []


def answer_all(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
    while peer.next_request(stream):
        conn.sendall(OK)


def test_keepalive_false_asks_the_peer_to_close_and_never_reuses(serve: Serve) -> None:
    peer, pool = serve(answer_all, keepalive=False)
    for _ in range(3):
        assert get(pool) == b"ok"
    assert peer.connections == 3
    assert all(b"\r\nConnection: close" in head for head in peer.heads)
    assert pool._idle == []


def test_a_pooled_request_head_is_minimal_http11(serve: Serve) -> None:
    peer, pool = serve(answer_all)
    reply = transport.request(
        pool,
        "PUT",
        "/v1/objects/a%20b?x=1",
        path="/p/a b",
        headers={"If-Match": '"e1"'},
        body=b"xy",
    )
    assert reply.read_all() == b"ok"
    assert peer.heads == [
        b'PUT /v1/objects/a%20b?x=1 HTTP/1.1\r\nHost: localhost\r\nIf-Match: "e1"\r\n'
        b"Content-Length: 2\r\n"
    ]
    assert peer.bodies == [b"xy"]
    assert peer.connections == 1


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/v1/objects/a b", {}),
        ("/v1/objects/a\r\nX: y", {}),
        ("/v1/objects/é", {}),
        ("/v1/objects/k", {"X-Evil": "a\r\nInjected: 1"}),
        ("/v1/objects/k", {"X-Evil\n": "a"}),
    ],
)
def test_unsafe_request_lines_and_headers_are_refused(
    serve: Serve, target: str, headers: dict[str, str]
) -> None:
    peer, pool = serve(answer_all)
    with pytest.raises(ValueError, match="refusing"):
        transport.request(pool, "GET", target, path="/p/k", headers=headers)
    assert peer.heads == []


def test_the_head_and_a_small_body_share_one_send(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer, pool = serve(answer_all)
    sends: list[int] = []
    original = transport.UnixConnection.send

    def counting(self: transport.UnixConnection, data: bytes | memoryview) -> None:
        sends.append(len(data))
        original(self, data)

    monkeypatch.setattr(transport.UnixConnection, "send", counting)
    assert get(pool, "PUT", body=b"x" * 100) == b"ok"
    assert get(pool) == b"ok"
    assert len(sends) == 2
    sends.clear()
    assert get(pool, "PUT", body=b"x" * 100_000) == b"ok"
    assert sends[1] == 100_000  # a large body is sent as it is, not copied behind the head
    sends.clear()
    upload = transport.start_upload(pool, "PUT", "/v1/objects/k", path="/p/k", headers={}, size=5)
    upload.send(b"hello")
    assert upload.finish().read_all() == b"ok"
    assert len(sends) == 1
    sends.clear()
    empty = transport.start_upload(pool, "PUT", "/v1/objects/k", path="/p/k", headers={}, size=0)
    assert empty.finish().read_all() == b"ok"
    assert len(sends) == 1
    assert peer.bodies == [b"x" * 100, b"", b"x" * 100_000, b"hello", b""]
    assert peer.connections == 1


def test_chunked_uploads_frame_every_piece(serve: Serve) -> None:
    peer, pool = serve(answer_all)
    upload = transport.start_upload(
        pool, "PUT", "/v1/objects/k", path="/p/k", headers={}, size=None
    )
    for piece in (b"a", memoryview(b"bc"), b"d" * 40_000, b""):
        upload.send(piece)
    assert upload.finish().read_all() == b"ok"
    assert b"Transfer-Encoding: chunked" in peer.heads[0]
    assert peer.bodies == [b"abc" + b"d" * 40_000]
    with pytest.raises(ValueError, match="already finished"):
        upload.send(b"late")


def count_received(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
    head, _ = b"", b""
    while (line := stream.readline()) not in (b"\r\n", b""):
        head += line
    peer.heads.append(head)
    peer.bodies.append(stream.read())  # until the client drops the connection


def test_an_aborted_upload_drops_its_connection_mid_body(serve: Serve) -> None:
    peer, pool = serve(count_received)
    upload = transport.start_upload(
        pool, "PUT", "/v1/objects/k", path="/p/k", headers={}, size=1000
    )
    upload.send(b"x" * 10)
    upload.abort()
    deadline = time.monotonic() + 5
    while not peer.bodies and time.monotonic() < deadline:
        time.sleep(0.01)
    assert peer.bodies == [b"x" * 10]  # the connector saw the body end 990 bytes short
    assert pool._idle == []


def refuse_early(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
    while stream.readline() not in (b"\r\n", b""):
        pass
    conn.sendall(
        b"HTTP/1.1 409 Conflict\r\nContent-Length: 44\r\nX-Asya-Error-Code: exists\r\n"
        b"Connection: close\r\n\r\n"
        b'{"code":"exists","message":"already there"}\n'
    )
    conn.shutdown(socket.SHUT_RDWR)


def test_an_early_error_answer_explains_a_broken_upload(serve: Serve) -> None:
    _, pool = serve(refuse_early)
    upload = transport.start_upload(
        pool, "PUT", "/v1/objects/k", path="/p/k", headers={}, size=64 * 1024 * 1024
    )

    def send_until_refused() -> None:
        for _ in range(256):
            upload.send(b"x" * 256 * 1024)

    with pytest.raises(FileExistsError, match="already there"):
        send_until_refused()
    with pytest.raises(ValueError, match="already finished or aborted"):
        upload.finish()


def answer_with_junk(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
    while peer.next_request(stream):
        conn.sendall(OK + b"junk")


def test_bytes_after_a_reply_keep_its_connection_out_of_the_pool(serve: Serve) -> None:
    peer, pool = serve(answer_with_junk)
    for _ in range(3):
        assert get(pool) == b"ok"
    assert peer.connections == 3


def close_after_answer(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
    if peer.next_request(stream):
        conn.sendall(OK)


def test_a_connection_the_peer_closed_while_idle_is_not_reused(serve: Serve) -> None:
    peer, pool = serve(close_after_answer)
    assert get(pool) == b"ok"
    deadline = time.monotonic() + 5
    while peer.connections < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the peer has closed the idle connection by now
    # A write is never replayed, so it must not be sent on the dead connection at all.
    assert get(pool, "PUT", body=b"x") == b"ok"
    assert peer.connections == 2


def close_each_answer(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
    if peer.next_request(stream):
        conn.sendall(
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
            if number % 2
            else b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        )


def test_http10_and_connection_close_answers_are_not_pooled(serve: Serve) -> None:
    peer, pool = serve(close_each_answer)
    for _ in range(4):
        assert get(pool) == b"ok"
    assert peer.connections == 4
    assert pool._idle == []


def test_the_pool_keeps_at_most_max_idle_connections(serve: Serve) -> None:
    _, pool = serve(answer_all)
    held = [pool.acquire("/p/k")[0] for _ in range(transport.MAX_IDLE + 3)]
    for conn in held:
        pool.release(conn)
    assert len(pool._idle) == transport.MAX_IDLE
    conn, reused = pool.acquire("/p/k")
    assert reused
    pool.release(conn)


def answer_with(raw: bytes) -> Script:
    def script(peer: Peer, conn: socket.socket, stream: BinaryIO, number: int) -> None:
        while peer.next_request(stream):
            conn.sendall(raw)

    return script


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nokabc",
            "conflicting Content-Length",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 5\r\n\r\nokabc", "conflicting Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000000000000000000000\r\n\r\nok",
            "bad Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"00000000000000002\r\nok\r\n0\r\n\r\n",
            "bad chunk size",
        ),
    ],
)
def test_a_reply_with_ambiguous_framing_is_refused_not_guessed(
    serve: Serve, raw: bytes, reason: str
) -> None:
    """Two lengths, a length past 2^63-1 or a 17-digit chunk size: a broken peer, never a body."""
    _, pool = serve(answer_with(raw))
    with pytest.raises(ConnectionError, match=reason) as caught:
        get(pool)
    assert caught.value.errno == errno.ECONNRESET
    assert caught.value.filename == "/p/k", "the error names the handler's path"
    assert pool._idle == [], "the connection that carried it is never reused"


def test_repeated_content_lengths_that_agree_frame_the_body(serve: Serve) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"
    peer, pool = serve(answer_with(raw))
    assert get(pool) == b"ok"
    assert get(pool) == b"ok"
    assert peer.connections == 1, "the agreed length kept the connection reusable"

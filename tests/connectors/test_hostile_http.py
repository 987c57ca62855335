"""Hostile HTTP sent over the real Unix socket to real connector processes.

What an attacker in the pod (or a buggy client) can send the connector and
what it must do instead of what it used to: header injection through a
stored content type, pipeline floods behind answers the client does not
read, control characters in header values, oversized chunk sizes and
Content-Lengths, ``100 Continue`` before the request was checked, a body
that stalls, HEAD answers that disagree with GET, HTTP/1.0 keep-alive.
Every test talks to ``asya-state connector NAME`` child processes.
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asya_state_cli.connector_process import ConnectorProcess
from tests.memory import PeakRss
from tests.rawhttp import Answer, RawConnection

MiB = 1024 * 1024
SMALL_LIMIT = 1024


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-state")


def _start(name: str, socket_dir: Path, env: dict[str, str]) -> ConnectorProcess:
    path = socket_dir / f"hostile-{name}-{os.getpid()}-{time.monotonic_ns()}.sock"
    return ConnectorProcess(name, path, env).start()


@pytest.fixture(scope="module")
def cas(socket_dir: Path, state_dir: Path) -> Iterator[ConnectorProcess]:
    """fs-buffered-cas with a short body timeout, so a stalled body is cut off quickly."""
    process = _start(
        "fs-buffered-cas",
        socket_dir,
        {"STATE_DIR": str(state_dir), "STATE_PREFIX": "cas", "CONNECTOR_BODY_TIMEOUT_SECONDS": "1"},
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def lww(socket_dir: Path, state_dir: Path) -> Iterator[ConnectorProcess]:
    """fs-buffered-lww: no ``cas`` capability."""
    process = _start("fs-buffered-lww", socket_dir, {"STATE_DIR": str(state_dir)})
    yield process
    process.stop()


@pytest.fixture(scope="module")
def small(socket_dir: Path) -> Iterator[ConnectorProcess]:
    """The memory connector with a 1 KiB object limit."""
    process = _start("memory", socket_dir, {"MEMORY_MAX_OBJECT_BYTES": str(SMALL_LIMIT)})
    yield process
    process.stop()


def put(process: ConnectorProcess, key: str, body: bytes, headers: bytes = b"") -> Answer:
    with RawConnection(process.socket_path) as conn:
        conn.send(
            b"PUT /v1/objects/%s HTTP/1.1\r\nContent-Length: %d\r\n%s\r\n%s"
            % (key.encode(), len(body), headers, body)
        )
        return conn.read_answer()


def get(process: ConnectorProcess, key: str, method: str = "GET") -> Answer:
    with RawConnection(process.socket_path) as conn:
        conn.send(b"%s /v1/objects/%s HTTP/1.1\r\n\r\n" % (method.encode(), key.encode()))
        return conn.read_answer(method)


def message(answer: Answer) -> str:
    body = json.loads(answer.body)
    assert isinstance(body, dict)
    return str(body["message"])


# -- response-header injection ---------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [b"text/plain\r\nContent-Length: 2", b"text/plain\nX: y", b"text/plain\x00", b"caf\xc3\xa9"],
    ids=["crlf", "lf", "nul", "non-ascii"],
)
def test_a_content_type_attribute_that_would_inject_headers_is_refused(
    cas: ConnectorProcess, value: bytes
) -> None:
    assert put(cas, "inject/a", b"0123456789").status == 200
    with RawConnection(cas.socket_path) as conn:
        conn.send(
            b"PUT /v1/xattrs/inject/a?name=content_type HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
            % (len(value), value)
        )
        refused = conn.read_answer()
    assert refused.status == 400
    assert "user.asya.content_type" in message(refused), "the error names the attribute"
    answer = get(cas, "inject/a")
    assert (answer.status, answer.body) == (200, b"0123456789"), "the key stays readable"
    assert answer.all("Content-Length") == ["10"]


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (b"Content-Type: text/plain\rX-Injected: 1\r\n", "content-type"),
        (b"Content-Type: text/\x00plain\r\n", "content-type"),
        (b"X-Request-Id: a\x7fb\r\n", "x-request-id"),
    ],
    ids=["bare-cr", "nul", "del"],
)
def test_control_characters_in_request_header_values_are_refused_naming_the_header(
    cas: ConnectorProcess, header: bytes, name: str
) -> None:
    with RawConnection(cas.socket_path) as conn:
        conn.send(
            b"PUT /v1/objects/inject/b HTTP/1.1\r\nContent-Length: 2\r\n" + header + b"\r\nok"
        )
        answer = conn.read_answer()
        assert answer.status == 400
        assert name in message(answer).lower(), "the error names the header"
        assert conn.closed_by_server()
    assert get(cas, "inject/b").status == 404, "nothing was stored"


def test_a_non_ascii_content_type_header_is_refused_naming_it(cas: ConnectorProcess) -> None:
    answer = put(cas, "inject/c", b"ok", b"Content-Type: caf\xe9\r\n")
    assert answer.status == 400
    assert "Content-Type" in message(answer)
    assert get(cas, "inject/c").status == 404


def test_a_content_type_stored_behind_the_connectors_back_is_left_out(
    cas: ConnectorProcess, state_dir: Path
) -> None:
    """An xattr set on the directory itself never reaches the wire as header lines."""
    assert put(cas, "inject/d", b"0123456789", b"Content-Type: text/plain\r\n").status == 200
    os.setxattr(
        state_dir / "cas" / "inject" / "d", "user.asya.content_type", b"a\r\nContent-Length: 2"
    )
    for method in ("GET", "HEAD"):
        answer = get(cas, "inject/d", method)
        assert answer.status == 200
        assert answer.all("Content-Length") == ["10"], method
        assert answer.header("Content-Type") in (None, "application/octet-stream"), method
    assert get(cas, "inject/d").body == b"0123456789"


# -- bounded pipelining ----------------------------------------------------------------


def _flood(sock: socket.socket, block: bytes, total: int) -> tuple[int, int, bytes]:
    """Send ``block``s up to ``total`` bytes until the peer stops reading for a second.

    Returns (blocks begun, bytes sent, the rest of the last block): the
    caller sends that rest while reading answers, so the server sees whole
    requests only.
    """
    sock.setblocking(False)
    sent = 0
    view = memoryview(block * 64)
    try:
        while sent < total:
            try:
                sent += sock.send(view[sent % len(view) :])
            except BlockingIOError:
                _, writable, _ = select.select([], [sock], [], 1.0)
                if not writable:
                    break  # nothing taken for a second: the server stopped reading
    finally:
        sock.settimeout(60)
    begun = -(-sent // len(block))
    return begun, sent, block[sent % len(block) :] if sent % len(block) else b""


@pytest.mark.slow
@pytest.mark.parametrize("behind", ["large-answer", "small-answers"])
def test_a_pipeline_flood_the_client_does_not_read_keeps_connector_memory_bounded(
    cas: ConnectorProcess, behind: str
) -> None:
    """400 MiB of pipelined requests while the client reads none of the answers.

    Behind one large answer the server stops reading once a head's worth of
    bytes waits; behind many small answers it stops taking requests (and
    reading) while its answers are not read. Either way the bytes wait in
    the client, not in the connector; once the client reads, every request
    is answered in order.
    """
    large = 8 * MiB
    if behind == "large-answer":
        assert put(cas, "flood/large", b"L" * large).status == 200
    assert put(cas, "flood/small", b"s").status == 200
    pad = b"X-Pad: " + b"p" * 1000 + b"\r\n"
    block = b"HEAD /v1/objects/flood/small HTTP/1.1\r\n" + pad + b"\r\n"
    with RawConnection(cas.socket_path, timeout=60) as conn:
        if behind == "large-answer":
            conn.send(b"GET /v1/objects/flood/large HTTP/1.1\r\n\r\n")
        with PeakRss(cas.pid) as rss:
            count, sent, rest = _flood(conn.sock, block, 400 * MiB)
        assert sent < 64 * MiB, f"the connector took {sent / MiB:.0f} MiB of pipelined requests"
        assert rss.peak - rss.baseline < 32 * MiB, (
            f"connector RSS grew by {(rss.peak - rss.baseline) / MiB:.0f} MiB"
        )
        finisher = threading.Thread(target=conn.send, args=(rest,))
        finisher.start()  # the server takes it once its answers are read
        if behind == "large-answer":
            answer = conn.read_answer()
            assert (answer.status, len(answer.body)) == (200, large)
        statuses = [conn.read_answer("HEAD").status for _ in range(count)]
        finisher.join()
        assert statuses == [200] * count, "every pipelined request answered, in order"
        conn.send(b"GET /v1/objects/flood/small HTTP/1.1\r\n\r\n")
        assert conn.read_answer().body == b"s", "the connection still serves"


# -- framing caps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("framing", "needle"),
    [
        (b"Content-Length: 100000000000000000000000000000\r\n\r\n", "Content-Length"),
        (b"Content-Length: 9223372036854775808\r\n\r\n", "Content-Length"),
        (b"Transfer-Encoding: chunked\r\n\r\n4ee2d6d415b85acef8100000000\r\n", "chunk size"),
        (b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", "chunk size"),
    ],
    ids=["length-1e29", "length-2^63", "chunk-1e32", "chunk-2^64"],
)
def test_oversized_lengths_are_refused_at_once_not_waited_for(
    cas: ConnectorProcess, framing: bytes, needle: str
) -> None:
    with RawConnection(cas.socket_path) as conn:
        conn.send(b"PUT /v1/objects/caps/x HTTP/1.1\r\n" + framing)
        answer = conn.read_answer()  # no half-close: a server that waits times out here
        assert answer.status == 400
        assert needle in message(answer)
        assert conn.closed_by_server()


@pytest.mark.parametrize(
    "opening",
    [
        b"GET /v1/health HTTP/1.1\r\nX-Endless: ",
        b"PUT /v1/objects/caps/t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: ",
    ],
    ids=["header", "trailer"],
)
def test_a_field_that_never_ends_is_refused_at_the_head_limit(
    cas: ConnectorProcess, opening: bytes
) -> None:
    """Sent in many small reads, as a slow client would: held at most about 64 KiB, then 431."""
    sent = 0
    with RawConnection(cas.socket_path) as conn:
        conn.send(opening)
        with PeakRss(cas.pid) as rss:
            try:
                while sent < 16 * MiB:
                    conn.send(b"v" * 4096)
                    sent += 4096
                    time.sleep(0.001)  # separate reads on the server's side
            except (BrokenPipeError, ConnectionResetError):
                pass
        answer = conn.read_answer()
    assert answer.status == 431
    assert sent < 2 * MiB, f"the connector took {sent / MiB:.1f} MiB of one header field"
    assert rss.peak - rss.baseline < 8 * MiB


# -- HEAD --------------------------------------------------------------------------------


def test_head_carries_the_content_length_a_get_sends(cas: ConnectorProcess) -> None:
    assert put(cas, "head/five", b"12345").status == 200
    with RawConnection(cas.socket_path) as conn:
        conn.send(
            b"HEAD /v1/objects/head/five HTTP/1.1\r\n\r\nGET /v1/objects/head/five HTTP/1.1\r\n\r\n"
        )
        head = conn.read_answer("HEAD")
        body = conn.read_answer()
    assert head.all("Content-Length") == body.all("Content-Length") == ["5"]
    assert head.header("ETag") == body.header("ETag")
    assert body.body == b"12345", "the HEAD answer carried no body bytes"


# -- 100 Continue ------------------------------------------------------------------------


def _expecting(
    target: bytes, length: int, extra: bytes = b"", version: bytes = b"HTTP/1.1"
) -> bytes:
    return b"PUT %s %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n%s\r\n" % (
        target,
        version,
        length,
        extra,
    )


@pytest.mark.parametrize(
    ("fixture", "head", "status"),
    [
        ("small", _expecting(b"/v1/objects/big", SMALL_LIMIT + 1), 413),
        ("lww", _expecting(b"/v1/objects/c/x", 2, b'If-Match: "abc"\r\n'), 501),
        ("cas", _expecting(b"/v1/objects/c/x", 2, b"If-None-Match: abc\r\n"), 400),
        ("cas", _expecting(b"/v1/objects/c/x", 2, b"Content-Type: a\x01b\r\n"), 400),
        ("cas", _expecting(b"/v1/objects/c/../x", 2), 400),
    ],
    ids=["too-large", "no-cas-capability", "bad-condition", "bad-content-type", "bad-key"],
)
def test_a_refused_request_gets_its_answer_instead_of_100_continue(
    request: pytest.FixtureRequest, fixture: str, head: bytes, status: int
) -> None:
    process: ConnectorProcess = request.getfixturevalue(fixture)
    with RawConnection(process.socket_path) as conn:
        conn.send(head)  # and waits for 100 Continue before sending the body
        answer = conn.read_answer()
    assert (answer.interim, answer.status) == ([], status)


def test_an_accepted_request_gets_100_continue_then_its_answer(cas: ConnectorProcess) -> None:
    with RawConnection(cas.socket_path) as conn:
        conn.send(_expecting(b"/v1/objects/c/ok", 2))
        assert conn.pending() == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.send(b"ok")
        answer = conn.read_answer()
    assert answer.status == 200
    assert get(cas, "c/ok").body == b"ok"


def test_http_1_0_never_gets_100_continue(cas: ConnectorProcess) -> None:
    with RawConnection(cas.socket_path) as conn:
        conn.send(_expecting(b"/v1/objects/c/old", 2, version=b"HTTP/1.0"))
        assert conn.pending() == b"", "an HTTP/1.0 client does not know interim answers"
        conn.send(b"ok")
        answer = conn.read_answer()
    assert (answer.interim, answer.status) == ([], 200)


# -- stalled bodies ----------------------------------------------------------------------


def test_a_stalled_body_is_cut_off_after_the_body_timeout_and_nothing_is_stored(
    cas: ConnectorProcess,
) -> None:
    """CONNECTOR_BODY_TIMEOUT_SECONDS=1 on this connector; the default is 600."""
    with RawConnection(cas.socket_path) as conn:
        conn.send(b"PUT /v1/objects/stall/x HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789")
        answer = conn.read_answer()
        assert answer.status == 408
        assert json.loads(answer.body)["code"] == "request_timeout"
        assert answer.header("Connection") == "close"
        assert conn.closed_by_server()
    assert get(cas, "stall/x").status == 404


# -- HTTP/1.0 keep-alive -----------------------------------------------------------------


def test_http_1_0_keep_alive_is_announced_and_honoured(cas: ConnectorProcess) -> None:
    with RawConnection(cas.socket_path) as conn:
        for _ in range(3):
            conn.send(b"GET /v1/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            answer = conn.read_answer()
            assert (answer.status, answer.header("Connection")) == (200, "keep-alive")
    with RawConnection(cas.socket_path) as conn:
        conn.send(b"GET /v1/health HTTP/1.0\r\n\r\n")
        answer = conn.read_answer()
        assert (answer.status, answer.header("Connection")) == (200, "close")
        assert conn.closed_by_server()


def test_http_1_0_with_transfer_encoding_is_refused_and_closed(cas: ConnectorProcess) -> None:
    with RawConnection(cas.socket_path) as conn:
        conn.send(
            b"PUT /v1/objects/old/chunked HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\n\r\n"
        )
        answer = conn.read_answer()
        assert answer.status == 400
        assert "HTTP/1.0" in message(answer)
        assert conn.closed_by_server()
    assert get(cas, "old/chunked").status == 404


# -- method not allowed ------------------------------------------------------------------


def test_a_method_not_allowed_names_the_allowed_ones(cas: ConnectorProcess) -> None:
    with RawConnection(cas.socket_path) as conn:
        conn.send(b"PATCH /v1/objects/x HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        answer = conn.read_answer()
    assert answer.status == 405
    assert answer.header("Allow") == "DELETE, GET, HEAD, POST, PUT"

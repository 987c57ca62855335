"""The runtime's response parser (response_parser): what http.client would conclude, without http.client.

Each case feeds raw response bytes, as a connector (or a broken peer) would
send them, through a fake socket that hands them out whole or in tiny
pieces, and checks status, headers, body framing, what is left in the
connection's buffer and whether the connection may be reused.
"""

from __future__ import annotations

import pytest

from asya_state_runtime import response_parser
from asya_state_runtime.response_parser import Reader, Response, read_response

# Piece sizes a peer's bytes arrive in: one recv() for all, and many tiny ones.
PIECES = [None, 1, 2, 7]


class _Socket:
    """A peer's bytes, handed out ``piece`` at a time (all at once for None)."""

    def __init__(self, raw: bytes, piece: int | None = None) -> None:
        self.raw = raw
        self.piece = piece
        self.recvs = 0

    def _take(self, most: int) -> bytes:
        self.recvs += 1
        size = min(most, self.piece or most)
        data, self.raw = self.raw[:size], self.raw[size:]
        return data

    def recv(self, most: int) -> bytes:
        return self._take(most)

    def recv_into(self, buffer: memoryview) -> int:
        data = self._take(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def reader(raw: bytes, piece: int | None = None) -> Reader:
    return Reader(_Socket(raw, piece))  # type: ignore[arg-type]


def respond(raw: bytes, method: str = "GET", piece: int | None = None) -> Response:
    return read_response(reader(raw, piece), method)


def read_in_small_steps(response: Response, step: int = 3) -> bytes:
    data = bytearray()
    buffer = memoryview(bytearray(step))
    while count := response.readinto(buffer):
        data += buffer[:count]
    assert response.done
    return bytes(data)


@pytest.mark.parametrize("piece", PIECES)
def test_headers_are_case_insensitive_and_repeats_are_joined(piece: int | None) -> None:
    wire = reader(
        b'HTTP/1.1 200 OK\r\nETag: "e1"\r\nX-Asya-Size: 3\r\nVary: a\r\nvary: b\r\n'
        b"Content-Length: 3\r\n\r\nabcEXTRA",
        piece,
    )
    response = read_response(wire, "GET")
    assert (response.status, response.version) == (200, 11)
    assert response.header("etag") == '"e1"'
    assert response.header("X-ASYA-SIZE") == "3"
    assert response.header("Vary") == "a, b"
    assert response.header("Missing") is None
    assert response.headers["x-asya-size"] == ["3"]
    assert response.length == 3
    assert response.read() == b"abc"
    assert response.done
    assert not response.will_close
    if piece is None:
        # Bytes past the response stay buffered: the pool refuses such a connection.
        assert wire.pending == len(b"EXTRA")


def test_one_reader_serves_consecutive_responses() -> None:
    wire = reader(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        b"HTTP/1.1 204 No Content\r\n\r\n"
    )
    assert read_response(wire, "GET").read() == b"ok"
    second = read_response(wire, "GET")
    assert (second.status, second.read()) == (404, b"{}")
    third = read_response(wire, "DELETE")
    assert (third.status, third.read()) == (204, b"")
    assert wire.pending == 0


@pytest.mark.parametrize("piece", PIECES)
def test_chunked_body_with_extensions_and_trailers(piece: int | None) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;name=value\r\nabc\r\n"
        b'A ; quoted="x;y"\r\n0123456789\r\n'
        b"0;last\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"
    )
    wire = reader(raw, piece)
    response = read_response(wire, "GET")
    assert response.chunked
    assert response.length is None
    assert response.read() == b"abc0123456789"
    assert not response.will_close
    # The trailers were consumed: the next response starts right after them.
    assert read_response(wire, "GET").read() == b"z"


@pytest.mark.parametrize("piece", PIECES)
def test_bodies_read_in_small_steps(piece: int | None) -> None:
    chunked = respond(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n \r\n"
        b"5\r\nworld\r\n0\r\n\r\n",
        piece=piece,
    )
    assert read_in_small_steps(chunked) == b"hello world"
    sized = respond(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", piece=piece)
    assert read_in_small_steps(sized, step=4) == b"hello world"
    assert sized.length == 0
    unframed = respond(b"HTTP/1.1 200 OK\r\n\r\nhello world", piece=piece)
    assert read_in_small_steps(unframed) == b"hello world"


def test_a_body_mixes_readinto_and_read() -> None:
    response = respond(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n2\r\ngh\r\n0\r\n\r\n"
    )
    buffer = memoryview(bytearray(4))
    assert response.readinto(buffer) == 4  # stops inside the first chunk
    assert response.read() == b"efgh"
    assert response.read() == b""


def test_a_large_body_goes_straight_into_the_callers_buffer() -> None:
    body = bytes(range(256)) * 1024
    sock = _Socket(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    response = read_response(Reader(sock), "GET")  # type: ignore[arg-type]
    assert response.read() == body
    target = memoryview(bytearray(len(body)))
    sock.raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    response = read_response(Reader(sock), "GET")  # type: ignore[arg-type]
    got = 0
    while count := response.readinto(target[got:]):
        got += count
    assert bytes(target) == body


def test_connection_close_and_unframed_bodies_end_the_connection() -> None:
    assert respond(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").will_close
    assert respond(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\n\r\n").will_close
    unframed = respond(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
    assert unframed.will_close
    assert unframed.read() == b"until the end"
    assert respond(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").will_close
    kept = respond(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
    assert (kept.version, kept.will_close) == (10, False)
    # A coding other than chunked last: the body runs until the connection ends.
    gzip = respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 1\r\n\r\nabc")
    assert (gzip.will_close, gzip.read()) == (True, b"abc")


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize(
    ("raw", "method"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "DELETE"),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "GET"),
    ],
)
def test_bodiless_answers_read_nothing_and_keep_the_connection(
    raw: bytes, method: str, piece: int | None
) -> None:
    response = respond(raw, method, piece)
    assert response.done
    assert response.length == 0
    assert response.read() == b""
    assert response.readinto(memoryview(bytearray(8))) == 0
    assert not response.will_close


@pytest.mark.parametrize("piece", PIECES)
def test_interim_answers_are_skipped(piece: int | None) -> None:
    response = respond(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\n\r\n{}",
        piece=piece,
    )
    assert response.status == 409
    assert response.header("link") is None
    assert response.read() == b"{}"


@pytest.mark.parametrize("piece", PIECES)
def test_bare_line_feeds_end_lines_too(piece: int | None) -> None:
    response = respond(b"HTTP/1.1 200 OK\nContent-Length: 2\nX: y\n\nok", piece=piece)
    assert (response.header("x"), response.read()) == ("y", b"ok")


def test_heads_near_the_limits() -> None:
    exactly = b"X: " + b"y" * (response_parser.MAX_LINE - 5) + b"\r\n"
    assert len(exactly) == response_parser.MAX_LINE
    response = respond(b"HTTP/1.1 200 OK\r\n" + exactly + b"Content-Length: 0\r\n\r\n")
    assert response.header("x") == "y" * (response_parser.MAX_LINE - 5)
    hundred = b"".join(b"X-%d: v\r\n" % i for i in range(99)) + b"Content-Length: 0\r\n"
    assert respond(b"HTTP/1.1 200 OK\r\n" + hundred + b"\r\n").header("x-98") == "v"
    # More than one line's worth of head in total is fine while every line is short.
    big = b"".join(b"X-%d: %b\r\n" % (i, b"v" * 3000) for i in range(40))
    assert respond(b"HTTP/1.1 200 OK\r\n" + big + b"Content-Length: 0\r\n\r\n").done


@pytest.mark.parametrize("piece", [None, 4096])
@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", response_parser.RemoteDisconnected),
        (b"garbage\r\n\r\n", response_parser.BadStatusLine),
        (b"\r\n\r\n", response_parser.BadStatusLine),
        (b"HTTP/1.1 abc OK\r\n\r\n", response_parser.BadStatusLine),
        (b"HTTP/1.1 99 Low\r\n\r\n", response_parser.BadStatusLine),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", response_parser.WireError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", response_parser.WireError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n", response_parser.WireError),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", response_parser.WireError),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n", response_parser.LineTooLong),
        (b"HTTP/1.1 200 OK" + b"!" * 70000 + b"\r\n\r\n", response_parser.LineTooLong),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000, response_parser.LineTooLong),
        (b"HTTP/2 200 OK\r\n\r\n", response_parser.WireError),
        # Cut short: a head that lost its end may have lost the header that mattered.
        (b"HTTP/1.1 200", response_parser.Truncated),
        (b"HTTP/1.1 200 OK\r\n", response_parser.Truncated),
        (b"HTTP/1.1 200 OK\r\nETag: x\r\nX-Asya-Si", response_parser.Truncated),
    ],
)
def test_malformed_heads_raise_wire_errors(
    raw: bytes, error: type[Exception], piece: int | None
) -> None:
    with pytest.raises(error):
        respond(raw, piece=piece)


def test_a_peer_that_closes_before_answering_looks_like_a_dropped_connection() -> None:
    with pytest.raises(response_parser.RemoteDisconnected) as caught:
        respond(b"")
    assert isinstance(caught.value, ConnectionError)
    assert isinstance(caught.value, response_parser.BadStatusLine)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5",
    ],
)
def test_a_body_cut_short_is_an_error_whichever_way_it_is_read(raw: bytes) -> None:
    with pytest.raises(response_parser.Truncated):
        respond(raw).read()
    with pytest.raises(response_parser.Truncated):
        read_in_small_steps(respond(raw))


@pytest.mark.parametrize("size", [b"-1", b"0x5", b"zz", b"1_0", b"+5", b""])
def test_bad_chunk_sizes_are_refused(size: bytes) -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nabcde\r\n0\r\n\r\n"
    )
    with pytest.raises(response_parser.WireError):
        respond(raw).read()


def test_chunk_data_must_end_with_a_line_break() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n0\r\n\r\n"
    with pytest.raises(response_parser.WireError):
        respond(raw).read()


def test_trailers_cut_short_end_the_body_but_not_reuse() -> None:
    response = respond(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n")
    assert response.read() == b"a"
    assert response.will_close


def test_tiny_pieces_cost_one_recv_each_not_more() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: x\r\n\r\nhello"
    sock = _Socket(raw, piece=1)
    response = read_response(Reader(sock), "GET")  # type: ignore[arg-type]
    assert response.read() == b"hello"
    assert sock.recvs <= len(raw) + 1
    whole = _Socket(raw)
    assert read_response(Reader(whole), "GET").read() == b"hello"  # type: ignore[arg-type]
    assert whole.recvs == 1

"""The runtime's response-head parser: what http.client would conclude, without the email package.

Each case feeds raw response bytes, as a connector (or a broken peer)
would send them, and checks status, headers, body framing and whether the
connection may be reused.
"""

from __future__ import annotations

import http.client
import io

import pytest

from asya_state_runtime.transport import _Response


class _Socket:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.raw))  # type: ignore[arg-type]


def respond(raw: bytes, method: str = "GET") -> http.client.HTTPResponse:
    response = _Response(_Socket(raw), method=method)  # type: ignore[arg-type]
    response.begin()
    return response


def test_headers_are_case_insensitive_and_repeats_are_joined() -> None:
    response = respond(
        b'HTTP/1.1 200 OK\r\nETag: "e1"\r\nX-Asya-Size: 3\r\nVary: a\r\nvary: b\r\n'
        b"Content-Length: 3\r\n\r\nabcEXTRA"
    )
    assert (response.status, response.reason, response.version) == (200, "OK", 11)
    assert response.getheader("etag") == '"e1"'
    assert response.getheader("X-ASYA-SIZE") == "3"
    assert response.getheader("Vary") == "a, b"
    assert response.getheader("Missing", "none") == "none"
    assert ("x-asya-size", "3") in response.getheaders()
    assert response.read() == b"abc"
    assert not response.will_close


def test_chunked_body_is_decoded() -> None:
    response = respond(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    assert response.length is None
    assert response.read() == b"abcde"
    assert not response.will_close


def test_connection_close_and_unframed_bodies_end_the_connection() -> None:
    assert respond(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").will_close
    unframed = respond(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
    assert unframed.will_close
    assert unframed.read() == b"until the end"
    assert respond(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").will_close


@pytest.mark.parametrize(
    ("raw", "method"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "DELETE"),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "GET"),
    ],
)
def test_bodiless_answers_read_nothing_and_keep_the_connection(raw: bytes, method: str) -> None:
    response = respond(raw, method)
    assert response.read() == b""
    assert not response.will_close


def test_interim_continue_is_skipped() -> None:
    response = respond(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 409 Conflict\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert response.status == 409
    assert response.read() == b"{}"


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", http.client.RemoteDisconnected),
        (b"garbage\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n", http.client.LineTooLong),
        (b"HTTP/2 200 OK\r\n\r\n", http.client.HTTPException),
    ],
)
def test_malformed_heads_raise_http_errors(raw: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        respond(raw)

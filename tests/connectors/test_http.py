"""The connector's HTTP/1.1 layer on a real Unix socket: framing, keep-alive, limits, back-pressure.

Each test serves a small handler through ``HttpConnection`` in this event
loop and talks to it with raw bytes from a client socket, so what is
checked is exactly what goes over the wire.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from asya_state_connectors.server import http, request_parser
from asya_state_connectors.server.http import (
    LINGER_SECONDS,
    ConnectionSet,
    HttpConnection,
    Request,
    Response,
    StreamResponse,
)

Handler = Callable[[Request], Awaitable[Response | StreamResponse]]
Serve = Callable[..., Awaitable["Served"]]


async def echo(request: Request) -> Response:
    """Answers with the method, target and the whole body it received."""
    body = b"".join([chunk async for chunk in request.content.iter_chunked(65536)])
    cut = request.content.exception()
    headers = {"X-Method": request.method, "X-Target": request.target, "X-Cut": str(bool(cut))}
    return Response(200, headers=headers, body=body)


class Served:
    """A handler served on a Unix socket in the running loop, with raw client connections."""

    def __init__(self, path: Path, handler: Handler, idle_timeout: float) -> None:
        self.path = path
        self.handler = handler
        self.idle_timeout = idle_timeout
        self.connections = ConnectionSet()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            lambda: HttpConnection(self.handler, self.connections, self.idle_timeout),
            str(self.path),
        )

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        self.connections.close_all()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_unix_connection(str(self.path))


@pytest.fixture
async def serve(socket_dir: Path) -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    started: list[Served] = []

    async def start(handler: Handler = echo, idle_timeout: float = 30.0) -> Served:
        served = Served(socket_dir / f"http-{len(started)}.sock", handler, idle_timeout)
        await served.start()
        started.append(served)
        return served

    yield start
    for served in started:
        await served.stop()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), 5) if length else b""
    return status, headers, body


async def test_pipelined_requests_are_answered_in_order_on_one_connection(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(
        b"PUT /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /b HTTP/1.1\r\n\r\n"
        b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
    )
    answers = [await read_response(reader) for _ in range(3)]
    writer.close()
    assert [(h["x-target"], body) for _, h, body in answers] == [
        ("/a", b"abc"),
        ("/b", b""),
        ("/c", b"xy"),
    ], "each pipelined request kept its own body and its place in line"


@pytest.mark.parametrize(
    ("wire", "expected", "reason"),
    [
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello", "one chunk"),
        (b"3;ext=1\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n", b"abcde", "chunk extensions are ignored"),
        (b"4\r\nwxyz\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", b"wxyz", "trailers are skipped"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", "hex sizes in upper case"),
        (b"0\r\n\r\n", b"", "an empty body"),
    ],
)
async def test_chunked_bodies_decode_exactly(
    serve: Serve, wire: bytes, expected: bytes, reason: str
) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(b"PUT /k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    for byte in wire:  # one byte per write: every split point of the framing is crossed
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.002)  # let the server read this byte on its own
    status, headers, body = await read_response(reader)
    writer.close()
    assert (status, body, headers["x-cut"]) == (200, expected, "False"), reason


@pytest.mark.parametrize(
    ("raw", "status", "reason"),
    [
        (b"GARBAGE\r\n\r\n", 400, "no method, target and version"),
        (b"GET /x HTTP/2.0\r\n\r\n", 505, "an HTTP version we do not serve"),
        (b"GET x HTTP/1.1\r\n\r\n", 400, "a target that is not an absolute path"),
        (b"G@T /x HTTP/1.1\r\n\r\n", 400, "a method that is not a token"),
        (b"GET /x HTTP/1.1\r\nNo colon here\r\n\r\n", 400, "a header line without a colon"),
        (b"GET /x HTTP/1.1\r\n folded: value\r\n\r\n", 400, "obsolete line folding"),
        (
            b"GET /x HTTP/1.1\r\nX: " + b"a" * (request_parser.MAX_HEAD + 10) + b"\r\n\r\n",
            431,
            "head too big",
        ),
        (b"GET /" + b"a" * (20 * 1024), 414, "a request line that never ends"),
        (
            b"GET /x HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n",
            431,
            "more than 100 header fields",
        ),
        (b"PUT /x HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "a negative Content-Length"),
        (
            b"PUT /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
            "conflicting Content-Length headers",
        ),
        (
            b"PUT /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            "both framings at once (request smuggling)",
        ),
        (b"PUT /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "an unknown transfer coding"),
        (
            b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n",
            400,
            "a chunk size that is not hex",
        ),
        (
            b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
            400,
            "chunk data longer than its size",
        ),
        (b"\x00\x01\x02\xff" * 100, 400, "binary noise that ends the connection"),
    ],
)
async def test_malformed_http_is_refused_with_a_status_and_closed(
    serve: Serve, raw: bytes, status: int, reason: str
) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(raw)
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()  # a head that never completes is refused when the client gives up
    got, headers, body = await read_response(reader)
    assert (got, headers.get("connection")) == (status, "close"), reason
    assert b"bad_request" in body, f"{reason}: the error body names its code"
    assert await asyncio.wait_for(reader.read(), 5) == b"", f"{reason}: the connection is closed"
    writer.close()


async def test_http_1_0_closes_unless_kept_alive_and_1_1_closes_on_request(serve: Serve) -> None:
    served = await serve()
    for request, stays_open in [
        (b"GET /a HTTP/1.0\r\n\r\n", False),
        (b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        (b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET /a HTTP/1.1\r\n\r\n", True),
    ]:
        reader, writer = await served.connect()
        writer.write(request)
        status, _, _ = await read_response(reader)
        assert status == 200
        if stays_open:
            writer.write(b"GET /again HTTP/1.1\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert (status, headers["x-target"]) == (200, "/again"), request
        else:
            assert await asyncio.wait_for(reader.read(), 5) == b"", request
        writer.close()


async def test_head_and_no_content_answers_carry_no_body(serve: Serve) -> None:
    async def answer(request: Request) -> Response:
        status = 204 if request.target == "/none" else 200
        return Response(status, body=b"" if status == 204 else b"payload")

    served = await serve(answer)
    reader, writer = await served.connect()
    writer.write(b"HEAD /x HTTP/1.1\r\n\r\nDELETE /none HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 ")
    no_content = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert no_content.startswith(b"HTTP/1.1 204 ")
    assert b"Content-Length" not in no_content
    status, _, body = await read_response(reader)
    assert (status, body) == (200, b"payload"), "nothing of HEAD's body leaked into the next answer"
    writer.close()


async def test_an_early_answer_drops_the_rest_of_the_body_then_closes(serve: Serve) -> None:
    async def refuse(request: Request) -> Response:
        return Response(409, body=b"no")  # never reads the body

    served = await serve(refuse)
    reader, writer = await served.connect()
    smuggled = b"GET /smuggled HTTP/1.1\r\n\r\n"
    writer.write(b"PUT /x HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (len(smuggled) + 200_000))
    writer.write(smuggled)  # body bytes that look like a request: never taken for one
    status, headers, _ = await read_response(reader)
    assert (status, headers.get("connection")) == (409, "close")
    # The client may go on sending the body it started; the server reads and drops it.
    writer.write(b"z" * 200_000)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b"", "closed once the body ended"
    writer.close()


async def test_a_client_that_stops_sending_after_an_early_answer_is_closed_at_once(
    serve: Serve,
) -> None:
    async def refuse(request: Request) -> Response:
        return Response(413, body=b"too large")

    served = await serve(refuse)
    reader, writer = await served.connect()
    writer.write(b"PUT /x HTTP/1.1\r\nContent-Length: 1000000\r\n\r\nabc")
    status, _, _ = await read_response(reader)
    assert status == 413
    writer.write_eof()  # gives up on the body it announced
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(), 2 * LINGER_SECONDS) == b""
    waited = asyncio.get_running_loop().time() - started
    assert waited < LINGER_SECONDS / 2, f"held {waited:.1f} s after the client's end of input"
    writer.close()


async def test_a_body_cut_off_by_the_client_is_reported_to_the_handler(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(b"PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
    await writer.drain()
    writer.write_eof()
    status, headers, body = await read_response(reader)
    assert (status, body, headers["x-cut"]) == (200, b"abc", "True"), "3 of 10 bytes, marked cut"
    writer.close()


async def test_expect_100_continue_is_answered_before_the_body(serve: Serve) -> None:
    served = await serve()
    reader, writer = await served.connect()
    writer.write(b"PUT /x HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"ok")
    status, _, body = await read_response(reader)
    assert (status, body) == (200, b"ok")
    writer.close()


async def test_an_idle_connection_is_closed_after_the_timeout(serve: Serve) -> None:
    served = await serve(idle_timeout=0.2)
    reader, writer = await served.connect()
    writer.write(b"GET /x HTTP/1.1\r\n\r\n")
    assert (await read_response(reader))[0] == 200
    assert await asyncio.wait_for(reader.read(), 5) == b"", "closed once idle"
    reader2, writer2 = await served.connect()
    writer2.write(b"GET /x HTTP/1.1\r\n")  # a head that never completes
    assert await asyncio.wait_for(reader2.read(), 5) == b"", "a stalled head is closed too"
    writer.close()
    writer2.close()


async def test_a_handler_behind_its_body_stops_the_socket_being_read(socket_dir: Path) -> None:
    """The server holds a bounded amount of an upload the handler has not consumed."""
    gate = asyncio.Event()
    seen: list[int] = []
    body_size = 32 * 1024 * 1024

    async def slow(request: Request) -> Response:
        await gate.wait()
        total = 0
        async for chunk in request.content.iter_chunked(1 << 20):
            total += len(chunk)
        seen.append(total)
        return Response(200, body=str(total).encode())

    served = Served(socket_dir / "slow.sock", slow, 30.0)
    await served.start()
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(client, str(served.path))
    try:
        await loop.sock_sendall(
            client, b"PUT /big HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % body_size
        )
        sent = 0
        block = b"z" * 65536
        # Push as fast as the server takes bytes for a while: a server that
        # kept reading would take the whole body.
        deadline = loop.time() + 3.0
        while sent < body_size and loop.time() < deadline:
            try:
                sent += client.send(block[: body_size - sent])
            except BlockingIOError:
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.2)
        (connection,) = served.connections.open
        buffered = connection._request.content.buffered  # type: ignore[union-attr]
        assert sent < body_size, "the client could push the whole body into a stalled server"
        assert buffered <= http.BODY_HIGH_WATER + 512 * 1024, (
            f"{buffered} bytes held for a stalled handler"
        )
        gate.set()
        await loop.sock_sendall(client, b"z" * (body_size - sent))
        reply = b""
        while not reply.endswith(str(body_size).encode()):
            reply += await asyncio.wait_for(loop.sock_recv(client, 65536), 10)
        assert seen == [body_size], "every byte arrived once the handler caught up"
    finally:
        client.close()
        await served.stop()


async def test_a_streamed_answer_that_stops_short_closes_the_connection(serve: Serve) -> None:
    async def short(request: Request) -> StreamResponse | Response:
        response = StreamResponse(200, {}, content_length=10)
        await response.prepare(request)
        await response.write(b"12345")
        return Response(500)  # the rest could not be produced

    served = await serve(short)
    reader, writer = await served.connect()
    writer.write(b"GET /x HTTP/1.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"Content-Length: 10" in head
    rest = await asyncio.wait_for(reader.read(), 5)
    assert rest == b"12345", (
        "the client sees a short body and a closed connection, never a 500 inside it"
    )
    writer.close()


async def test_a_streamed_answer_never_puts_bytes_past_its_length_on_the_wire(
    serve: Serve,
) -> None:
    async def long(request: Request) -> StreamResponse:
        response = StreamResponse(200, {}, content_length=5)
        await response.prepare(request)
        await response.write(b"12345")
        await response.write(b"HTTP/1.1 200 OK\r\n\r\n")  # a backend that sent more than it said
        return response

    served = await serve(long)
    reader, writer = await served.connect()
    writer.write(b"GET /x HTTP/1.1\r\n\r\n")
    status, headers, body = await read_response(reader)
    assert (status, headers["content-length"], body) == (200, "5", b"12345")
    assert await asyncio.wait_for(reader.read(), 5) == b"", "closed, with nothing past the body"
    writer.close()


async def test_an_answer_whose_header_would_split_is_replaced_by_a_500(serve: Serve) -> None:
    async def injected(request: Request) -> Response:
        return Response(200, headers={"Content-Type": "a\r\nContent-Length: 0"}, body=b"payload")

    served = await serve(injected)
    reader, writer = await served.connect()
    writer.write(b"GET /x HTTP/1.1\r\n\r\n")
    status, _, body = await read_response(reader)
    assert status == 500
    assert b"Content-Type" in body, "the error names the header it refused to send"
    writer.close()

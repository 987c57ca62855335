"""HTTP/1.1 connections of the connector server on asyncio (Unix socket, or loopback TCP for metrics).

Owns: answering one request at a time per connection, in order (requests
parsed ahead of their turn, at most one read's worth, wait in a queue and
the socket is not read while any wait, nor while the client leaves our
answers unread), request bodies handed to the handler as a bounded stream
(the socket stops being read while the handler is behind; a body that
brings no byte for the body timeout is cut off), ``100 Continue`` sent only
when the handler starts reading the body (so after its checks) and only to
HTTP/1.1, whole and streamed responses with write back-pressure (a streamed
body never exceeds its Content-Length on the wire), keep-alive for HTTP/1.1
and for HTTP/1.0 clients that ask for it, an idle timeout, and the set of
open connections a graceful drain closes. Requests are parsed by
``request_parser``, response heads encoded by ``response_head``.

Must not: know the protocol's paths, connectors or error codes beyond
answering malformed HTTP with 400/408/413/414/431/501/505 and closing.

Why our own connection class: the benchmark's profile of a 1 KiB read spent
most of the connector's CPU in a general-purpose framework's request and
response machinery (about 60 µs per request); the wire protocol needs a
small, strict subset of HTTP/1.1. Requests are tokenised by llhttp (through
httptools), the parser behind uvicorn and aiohttp's C path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import cast

from ..errors import ERROR_CODE_HEADER
from .request_parser import Headers, HttpError, RequestHead, RequestParser
from .response_head import UnsafeHeader, head_bytes

log = logging.getLogger("asya_state_connectors.server")

# Body bytes buffered ahead of the handler before the socket stops being read.
BODY_HIGH_WATER = 1024 * 1024
BODY_LOW_WATER = 256 * 1024
# An idle keep-alive connection, or one whose request head never completes, is closed after this.
IDLE_TIMEOUT = 75.0
# After answering before the body ended, the rest of it is read and dropped for at most this long.
LINGER_SECONDS = 5.0
# A request body that brings no new byte for this long while the handler waits for one is
# cut off (408). Generous: a passthrough write streams as fast as the handler produces.
BODY_TIMEOUT = 600.0
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_NO_BODY_STATUSES = frozenset({204, 304})


class BodyTimeout(TimeoutError):
    """The client sent no byte of the request body for the body timeout."""


class Body:
    """A request body in the order it arrives, bounded by the connection's flow control.

    A body cut off by the client (or stalled past the body timeout) ends
    like a complete one; ``exception()`` tells them apart, so the caller can
    refuse to store a partial body.
    """

    def __init__(
        self,
        connection: HttpConnection | None,
        *,
        expect_continue: bool = False,
        timeout: float = BODY_TIMEOUT,
    ) -> None:
        self._connection = connection
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._eof = connection is None
        self._exception: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._discarding = False
        # The client waits for "100 Continue" before sending: sent when the
        # handler first asks for body bytes, i.e. once it accepted the request.
        self._expect_continue = expect_continue
        self._timeout = timeout

    # -- fed by the connection ---------------------------------------------

    def feed(self, data: bytes) -> None:
        if data and not self._discarding:
            self._expect_continue = False  # the client did not wait
            self._chunks.append(data)
            self._buffered += len(data)
            self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def cut_off(self, exc: BaseException) -> None:
        if not self._eof:
            self._exception = exc
            self._eof = True
            self._wake()

    def discard(self) -> None:
        """Drop what is buffered and whatever else arrives: nobody will read it."""
        self._discarding = True
        self._chunks.clear()
        self._buffered = 0

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def complete(self) -> bool:
        return self._eof

    # -- read by the handler -------------------------------------------------

    def exception(self) -> BaseException | None:
        """Why the body ended early (the client went away or broke the framing), or None."""
        return self._exception

    async def iter_chunked(self, size: int) -> AsyncIterator[bytes]:
        """Pieces of at most ``size`` bytes as they arrive, until the body ends."""
        while piece := await self._take(size):
            yield piece

    async def read(self, limit: int) -> bytes:
        """Up to ``limit`` bytes: fewer only when the body ends first."""
        parts: list[bytes] = []
        wanted = limit
        while wanted > 0 and (piece := await self._take(wanted)):
            parts.append(piece)
            wanted -= len(piece)
        return b"".join(parts)

    async def _take(self, size: int) -> bytes:
        while not self._chunks:
            if self._eof:
                return b""
            if self._expect_continue and self._connection is not None:
                self._expect_continue = False
                self._connection.write(_CONTINUE)
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            timer = loop.call_later(self._timeout, self._stalled) if self._timeout else None
            try:
                await self._waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
        first = self._chunks.popleft()
        if len(first) > size:
            self._chunks.appendleft(first[size:])
            first = first[:size]
        self._buffered -= len(first)
        if self._connection is not None and self._buffered <= BODY_LOW_WATER:
            self._connection.resume_reading()
        return first

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _stalled(self) -> None:
        self.cut_off(BodyTimeout(f"no byte of the request body for {self._timeout:g} s"))


class Request:
    """One parsed request head, its body stream and the connection that answers it."""

    __slots__ = (
        "answered",
        "connection",
        "content",
        "content_length",
        "headers",
        "http10",
        "keep_alive",
        "method",
        "target",
    )

    def __init__(
        self,
        connection: HttpConnection,
        method: str,
        target: str,
        headers: Headers,
        content_length: int | None,
        content: Body,
        keep_alive: bool = True,
    ) -> None:
        self.connection = connection
        self.method = method
        self.target = target
        self.headers = headers
        self.content_length = content_length
        self.content = content
        self.keep_alive = keep_alive  # as the client asked (HTTP/1.0: only if it said so)
        self.http10 = False
        # Set once a response head is on the wire: nothing else may be sent for this request.
        self.answered = False


class Response:
    """A whole response: status, headers and a body held in memory (small by construction)."""

    def __init__(
        self,
        status: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> None:
        self.status = status
        self.headers = dict(headers or {})
        if content_type is not None:
            self.headers["Content-Type"] = content_type
        self.body = body
        self.close_after = False

    def force_close(self) -> None:
        """Close the connection once this response is sent."""
        self.close_after = True

    def encode(self, method: str, close: bool, http10: bool = False) -> bytes:
        """The head and body on the wire; raises UnsafeHeader for a header that cannot be sent."""
        if self.status in _NO_BODY_STATUSES:
            return head_bytes(self.status, self.headers, close, http10)
        if method == "HEAD":
            # A HEAD answer may carry the length a GET would send (a stat sets it).
            self.headers.setdefault("Content-Length", str(len(self.body)))
            return head_bytes(self.status, self.headers, close, http10)
        self.headers["Content-Length"] = str(len(self.body))
        return head_bytes(self.status, self.headers, close, http10) + self.body


def json_response(status: int, body: object, headers: Mapping[str, str] | None = None) -> Response:
    payload = json.dumps(body, separators=(",", ":")).encode()
    return Response(status, headers=headers, body=payload, content_type="application/json")


class StreamResponse:
    """A response whose body of a known length is written piece by piece with back-pressure."""

    def __init__(self, status: int, headers: Mapping[str, str], content_length: int) -> None:
        self.status = status
        self.headers = dict(headers)
        self.headers["Content-Length"] = str(content_length)
        self.content_length = content_length
        self._sent = 0
        self._head: bytes | None = None  # settled by prepare(), sent with the first body bytes
        self._request: Request | None = None

    async def prepare(self, request: Request) -> None:
        """Settle the head; it goes out with the first piece of body, in one write."""
        connection = request.connection
        self._head = head_bytes(
            self.status, self.headers, not connection.keep_alive, connection.http10
        )
        self._request = request

    async def write(self, data: bytes) -> None:
        if self._sent + len(data) > self.content_length:
            # Bytes past the announced length would be read as the next answer.
            raise ValueError(
                f"{self._sent + len(data)} body bytes for a Content-Length of {self.content_length}"
            )
        self._sent += len(data)
        # One write for head and body: a reader woken by the head alone would
        # sleep again until the body came, a second wake-up per request.
        await self._send(self._take_head() + data)

    async def write_eof(self) -> None:
        await self._send(self._take_head())

    def _take_head(self) -> bytes:
        if self._request is None:
            raise RuntimeError("prepare() the response before writing its body")
        head, self._head = self._head or b"", None
        if head:
            self._request.answered = True
        return head

    async def _send(self, data: bytes) -> None:
        assert self._request is not None
        if data:
            self._request.connection.write(data)
        await self._request.connection.drain()

    @property
    def complete(self) -> bool:
        return (
            self._request is not None and self._head is None and self._sent == self.content_length
        )


Handler = Callable[[Request], Awaitable[Response | StreamResponse]]


class ConnectionSet:
    """Every open connection of one listener, so a shutdown can close them."""

    def __init__(self) -> None:
        self.open: set[HttpConnection] = set()

    def close_all(self) -> None:
        for connection in list(self.open):
            connection.close()


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests and answers them one at a time, in order."""

    def __init__(
        self,
        handler: Handler,
        connections: ConnectionSet,
        idle_timeout: float = IDLE_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self._handler = handler
        self._connections = connections
        self._idle_timeout = idle_timeout
        self._body_timeout = body_timeout
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = RequestParser(self)
        self._request: Request | None = None  # being answered
        self._parsing: Request | None = None  # whose body the parser is in
        # Parsed behind the one being answered (pipelined), or the refusal of a later request.
        self._waiting: deque[Request | HttpError] = deque()
        self._reading_paused = False
        self._writing_paused = False
        # The next request waits until the client has read what was already answered.
        self._next_waits_for_drain = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None
        self._lingering = False
        self._closed = False
        self.keep_alive = True
        self.http10 = False  # the request being answered is HTTP/1.0

    # -- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.open.add(self)
        self._arm_idle_timer()

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed(data)
        except HttpError as exc:
            self._parser.done = True  # nothing after a refusal is parsed
            parsing = self._parsing
            if self._request is None or parsing is self._request:
                self._refuse(exc)
                return
            # A later request is malformed: it is refused in its turn.
            if parsing is not None:
                parsing.content.cut_off(ConnectionResetError(exc.message))
            self._waiting.append(exc)
        if self._waiting:
            # Requests behind the one being answered wait in the socket (and
            # the client), not here: at most one read's worth is parsed ahead.
            self._pause_reading()

    def eof_received(self) -> bool:
        request = self._request
        if request is None:
            if self._parser.in_head:
                self._refuse(HttpError(400, "the connection ended inside a request head"))
            return False
        if self._lingering:
            # The answer is out and the rest of the body can no longer come.
            self.close()
            return False
        if self._parsing is not None:
            self._parsing.content.cut_off(
                ConnectionResetError("the client ended the request body early")
            )
        self.keep_alive = False
        return True  # half-open: the answer can still be written

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._connections.open.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        gone = ConnectionResetError("the client disconnected")
        for request in (self._request, self._parsing, *self._waiting):
            if isinstance(request, Request):
                request.content.cut_off(gone)
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_exception(ConnectionResetError("the client disconnected"))

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if self._next_waits_for_drain:
            self._next_waits_for_drain = False
            self._start_next()

    # -- fed by the RequestParser -------------------------------------------------

    def request_head(self, head: RequestHead) -> None:
        self._mark_busy()
        fields = head.fields
        http10 = head.version == "HTTP/1.0"
        body = (
            Body(
                self,
                # HTTP/1.0 clients do not know interim answers.
                expect_continue=not http10 and fields.get("expect", "").lower() == "100-continue",
                timeout=self._body_timeout,
            )
            if head.has_body
            else Body(None)
        )
        request = Request(
            self, head.method, head.target, Headers(fields), head.length, body, head.keep_alive
        )
        request.http10 = http10
        if head.has_body:
            self._parsing = request
        if self._request is None and not self._waiting:
            self._begin(request)
        else:
            self._waiting.append(request)

    def request_body(self, data: bytes) -> None:
        request = self._parsing
        assert request is not None
        body = request.content
        body.feed(data)
        if body.buffered > BODY_HIGH_WATER:
            self._pause_reading()

    def request_end(self) -> None:
        request, self._parsing = self._parsing, None
        if request is None:
            return  # a request without a body: complete from its head
        request.content.feed_eof()
        if self._lingering and request is self._request:
            self.close()

    # -- used by Body and responses ------------------------------------------

    def resume_reading(self) -> None:
        """Read the socket again after back-pressure paused it (a no-op when it is not paused)."""
        if self._next_waits_for_drain or self._waiting:
            return  # the client must read our answers first, or requests wait their turn
        transport = self._transport
        if self._reading_paused and transport is not None and not transport.is_closing():
            self._reading_paused = False
            transport.resume_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and not self._closed and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def write(self, data: bytes) -> None:
        if self._closed or self._transport is None or self._transport.is_closing():
            raise ConnectionResetError("the client disconnected")
        self._transport.write(data)

    async def drain(self) -> None:
        if self._closed:
            raise ConnectionResetError("the client disconnected")
        if self._writing_paused:
            self._drain_waiter = self._loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # -- answering -----------------------------------------------------------

    async def _answer(self, request: Request) -> None:
        try:
            response = await self._handler(request)
        except ConnectionResetError:
            self.close()  # the client went away mid-answer
            return
        except Exception:
            log.exception("unexpected error answering %s", request.method)
            response = json_response(500, {"code": "backend_error", "message": "internal error"})
        except BaseException:
            self.close()
            raise
        if request.answered:
            if not (isinstance(response, StreamResponse) and response.complete):
                # The head is out and its body cannot be finished: only closing tells the client.
                self.close()
                return
        elif isinstance(response, Response):
            cut_off = request.content.exception() is not None
            if not request.content.complete or cut_off or response.close_after:
                # Unread body bytes would be taken for the next request.
                self.keep_alive = False
            request.answered = True
            try:
                wire = response.encode(request.method, not self.keep_alive, self.http10)
            except UnsafeHeader as exc:
                log.error("%s", exc)
                failed = json_response(500, {"code": "backend_error", "message": str(exc)})
                wire = failed.encode(request.method, not self.keep_alive, self.http10)
            try:
                self.write(wire)
            except ConnectionResetError:
                return
            if cut_off:
                self.close()  # where the body would have ended is unknown now
                return
            if not request.content.complete:
                self._linger(request.content)
                return
        else:
            self.close()  # a stream response never prepared or never finished
            return
        self._finish()

    def _begin(self, request: Request) -> None:
        self._request = request
        self.keep_alive = request.keep_alive
        self.http10 = request.http10
        self._loop.create_task(self._answer(request))

    def _finish(self) -> None:
        self._request = None
        if not self.keep_alive or self._closed:
            self.close()
            return
        if self._writing_paused:
            # The client is not reading our answers: take no further request
            # (and read nothing more) until it does, or answers pile up here.
            self._pause_reading()
            self._next_waits_for_drain = True
            return
        self._start_next()

    def _start_next(self) -> None:
        if self._closed:
            return
        if not self._waiting:
            self._arm_idle_timer()
            self.resume_reading()
            return
        following = self._waiting.popleft()
        if isinstance(following, HttpError):
            self._refuse(following)
        else:
            self._begin(following)
            self.resume_reading()  # unless more requests wait

    def _linger(self, body: Body) -> None:
        """Read and drop the rest of a body answered early, then close.

        A client still sending would otherwise meet a reset and could lose
        the answer (a refused condition, a size limit) that explains why.
        """
        body.discard()
        self._lingering = True
        self.resume_reading()
        self._loop.call_later(LINGER_SECONDS, self.close)

    def _refuse(self, exc: HttpError) -> None:
        """Answer what the HTTP layer cannot accept, unless an answer already started; then close."""
        request = self._request
        if request is not None:
            request.content.cut_off(ConnectionResetError(exc.message))
            if request.answered:
                self.close()
                return
            request.answered = True  # the handler's own answer is dropped
        # The code header marks every error answer as the protocol's (a client
        # tells a foreign server's error page by its absence).
        answer = json_response(
            exc.status,
            {"code": "bad_request", "message": exc.message},
            {ERROR_CODE_HEADER: "bad_request"},
        )
        with contextlib.suppress(ConnectionResetError):
            self.write(answer.encode("GET", close=True))  # the body too, whatever the method
        self.close()

    # -- idle timeout ----------------------------------------------------------

    # One timer per connection, re-armed only when it fires: requests just
    # stamp the time, which is cheaper than a new timer handle per request.

    def _arm_idle_timer(self) -> None:
        """The connection is idle from now (also: waiting for a complete head)."""
        self._idle_since = self._loop.time()
        if self._idle_timer is None and not self._closed:
            self._idle_timer = self._loop.call_later(self._idle_timeout, self._idle_check)

    def _mark_busy(self) -> None:
        """A request is in progress: not idle."""
        self._idle_since = None

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._closed:
            return
        if self._idle_since is None:
            delay = self._idle_timeout
        else:
            delay = self._idle_since + self._idle_timeout - self._loop.time()
            if delay <= 0:
                self.close()
                return
        self._idle_timer = self._loop.call_later(delay, self._idle_check)

"""HTTP/1.1 request parsing for the connector server: bytes off a connection into request events.

Owns: ``RequestParser``, which runs llhttp (httptools) over a connection's
bytes inside our limits and reports request heads (lower-cased header
names, the body framing: Content-Length up to 2^63-1 or chunked, chunked
only in HTTP/1.1), body pieces and message ends; refusals as ``HttpError``
with the status to answer and a message naming the header at fault.
Response heads are encoded by ``response_head``.

Must not: touch sockets, the event loop or the protocol's paths, or write
anything a client receives.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import NoReturn, Protocol

import httptools

# A request head (request line and headers) larger than this is refused with 431.
MAX_HEAD = 64 * 1024
# A request line longer than this is refused before its head completes.
MAX_REQUEST_LINE = 16 * 1024
MAX_HEADERS = 100
# The largest Content-Length taken (what a file offset holds); 10^29 is refused, not waited for.
MAX_CONTENT_LENGTH = 2**63 - 1


class HttpError(Exception):
    """A request the HTTP layer refuses before any handler sees it; the connection then closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Headers(Mapping[str, str]):
    """Request headers by lower-cased name; repeated fields are joined with ``, ``."""

    __slots__ = ("_fields",)

    def __init__(self, fields: dict[str, str]) -> None:
        self._fields = fields

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._fields.get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


class RequestEvents(Protocol):
    """What a RequestParser reports, in the order of the byte stream."""

    def request_head(self, head: RequestHead) -> None: ...

    def request_body(self, data: bytes) -> None: ...

    def request_end(self) -> None: ...


class RequestHead:
    """A parsed request head and the framing of its body."""

    __slots__ = ("chunked", "fields", "keep_alive", "length", "method", "target", "version")

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        fields: dict[str, str],
        length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.fields = fields
        self.length = length
        self.chunked = chunked
        self.keep_alive = keep_alive

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)


class RequestParser:
    """Requests off one connection's byte stream: llhttp (httptools) inside our own limits.

    llhttp does the tokenising and framing (strict mode: no bare CR or LF,
    no control characters in values, no Content-Length with
    Transfer-Encoding, no duplicate Content-Length, chunk sizes below 2^64);
    this class adds what it leaves to its user: the size of a head (also one
    that never ends), the number of header fields, origin-form targets,
    HTTP/1.0 and 1.1 only, Content-Length at most 2^63-1, chunked only in
    HTTP/1.1, and statuses and messages (naming the header) for refusals.
    After a message that ends the connection, nothing more is parsed.
    """

    __slots__ = (
        "_counted",
        "_error",
        "_events",
        "_fields",
        "_in_head",
        "_parser",
        "_size",
        "_starts",
        "_trailers",
        "_url",
        "done",
    )

    def __init__(self, events: RequestEvents) -> None:
        self._events = events
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._fields: dict[str, str] = {}
        self._size = 0  # bytes of the head's fields so far
        self._in_head = False  # inside a head or a chunk-size line and trailers
        self._trailers = False
        self._counted = 0  # bytes of reads that found and left a head open
        self._starts = 0  # heads and chunk-size lines begun, to tell reads apart
        self._error: HttpError | None = None
        self.done = False  # a message ended the connection (or upgraded it)

    @property
    def in_head(self) -> bool:
        """Part of a request head has arrived, not all of it."""
        return self._in_head and not self._trailers

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises HttpError for a request to refuse."""
        if self.done:
            return
        starts = self._starts
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.done = True  # the request is complete; nothing after it is HTTP we serve
        except httptools.HttpParserError as exc:
            error, self._error = self._error, None
            if error is None:
                cause = exc.__context__
                if cause is not None and not isinstance(cause, httptools.HttpParserError):
                    raise cause from None  # a bug in an event handler, not the client's fault
                error = _refusal(exc, data)
            raise error from None
        if self._in_head and self._starts == starts:
            # A head (or chunk-size line, or trailers) still open after a whole
            # read that began inside it: llhttp holds what it has of a field.
            self._counted += len(data)
            if self._counted > MAX_HEAD:
                raise HttpError(431, f"the request head exceeds {MAX_HEAD} bytes")

    # -- httptools callbacks ------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._fields = {}
        self._size = 0
        self._in_head = True
        self._trailers = False
        self._counted = 0
        self._starts += 1

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_REQUEST_LINE:
            self._fail(414, f"the request line exceeds {MAX_REQUEST_LINE} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._size += len(name) + len(value) + 4
        if self._size > MAX_HEAD:
            self._fail(431, f"the request head exceeds {MAX_HEAD} bytes")
        if self._trailers:
            return  # a trailer field: read and dropped
        fields = self._fields
        if len(fields) >= MAX_HEADERS:
            self._fail(431, f"more than {MAX_HEADERS} header fields")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = fields.get(key)
        fields[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            self._fail(505, "only HTTP/1.0 and HTTP/1.1 are served")
        target = self._url.decode("latin-1")
        if not target.startswith("/"):
            self._fail(400, "the request target must be an absolute path")
        fields = self._fields
        length: int | None = None
        chunked = False
        encoding = fields.get("transfer-encoding")
        if encoding is not None:
            if version == "1.0":
                # RFC 9112, section 6.1: the framing of such a message is faulty.
                self._fail(400, "Transfer-Encoding is not part of HTTP/1.0")
            if encoding.strip().lower() != "chunked":
                self._fail(501, f"unsupported Transfer-Encoding {encoding[:40]!r}")
            chunked = True
        elif (declared := fields.get("content-length")) is not None:
            if len(declared) > 19 or int(declared) > MAX_CONTENT_LENGTH:
                self._fail(400, f"Content-Length {declared[:40]} exceeds {MAX_CONTENT_LENGTH}")
            length = int(declared)
        self._in_head = False
        self._trailers = True  # any field from here on is a trailer
        head = RequestHead(
            parser.get_method().decode("ascii"),
            target,
            "HTTP/" + version,
            fields,
            length,
            chunked,
            # HTTP/1.1 unless "Connection: close", HTTP/1.0 only with "keep-alive";
            # a request to switch protocols ends the connection after its answer.
            parser.should_keep_alive() and not parser.should_upgrade(),
        )
        self._events.request_head(head)

    def on_body(self, body: bytes) -> None:
        self._in_head = False
        self._events.request_body(body)

    def on_chunk_header(self) -> None:
        # A chunk-size line, or the last one and its trailers: bounded like a head.
        self._in_head = True
        self._counted = 0
        self._starts += 1

    def on_chunk_complete(self) -> None:
        self._in_head = False

    def on_message_complete(self) -> None:
        self._in_head = False
        if not self._parser.should_keep_alive():
            self.done = True
        self._events.request_end()

    def _fail(self, status: int, message: str) -> NoReturn:
        self._error = HttpError(status, message)
        raise self._error


_FIELD_NAME = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# llhttp's reasons, by the words they start with, and what we answer.
_REFUSALS = (
    ("Invalid method", "unknown request method"),
    ("Invalid URL", "the request target must be an absolute path without controls or spaces"),
    (
        "Invalid char in url",
        "the request target must be an absolute path without controls or spaces",
    ),
    ("Invalid characters in url", "the request target must be an absolute path"),
    ("Duplicate Content-Length", "conflicting Content-Length headers"),
    ("Content-Length can't be present", "Content-Length and Transfer-Encoding cannot be combined"),
    ("Invalid character in Content-Length", "bad Content-Length"),
    ("Content-Length overflow", f"Content-Length exceeds {MAX_CONTENT_LENGTH}"),
    ("Chunk size overflow", "malformed chunked body: a chunk size of 2^64 or more"),
    ("Invalid character in chunk size", "malformed chunked body: bad chunk size"),
    ("Expected LF after chunk", "malformed chunked body: data longer than its size"),
    ("Expected CRLF after chunk", "malformed chunked body: data longer than its size"),
)


def _refusal(exc: Exception, data: bytes) -> HttpError:
    """The HttpError for llhttp's refusal of ``data``; a bad header value names the header."""
    reason = str(exc)
    if "version" in reason.lower():
        return HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served")
    if "header value" in reason:
        for line in data.split(b"\r\n"):
            name = _FIELD_NAME.match(line)
            if name is not None and _BAD_VALUE.search(line, name.end()):
                header = name.group(1).decode("ascii")
                return HttpError(
                    400,
                    f"the value of the header {header!r} has a control character (NUL, CR, LF, ...)",
                )
        return HttpError(400, "a header value has a control character (NUL, CR, LF, ...)")
    for start, message in _REFUSALS:
        if reason.startswith(start):
            return HttpError(400, message)
    return HttpError(400, f"malformed request: {reason}")

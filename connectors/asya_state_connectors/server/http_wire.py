"""The HTTP/1.1 wire format the connector server speaks: request heads, framing, response heads.

Owns: parsing a request head within limits (request line, header fields,
their lower-cased names, values without control characters), the body
framing it declares (Content-Length up to 2^63-1 or chunked, never both;
chunked only in HTTP/1.1), decoding the chunked transfer coding (at most 16
hex digits a size), and encoding a response head, refusing any header value
that could split it (CR, LF, NUL or another control character, non-ASCII).
Every refusal of a request is an ``HttpError`` carrying the status to
answer; a response head that cannot be sent is an ``UnsafeHeader``.

Must not: touch sockets, the event loop or the protocol's paths.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Protocol

# A request head (request line and headers) larger than this is refused with 431.
MAX_HEAD = 64 * 1024
# A request line longer than this is refused before its head completes.
MAX_REQUEST_LINE = 16 * 1024
MAX_HEADERS = 100
# A chunk-size line (with extensions) or a trailer line longer than this is malformed.
MAX_CHUNK_LINE = 4096
# A chunk size of more hex digits than this (2^64 and up) is refused, as llhttp does.
MAX_CHUNK_SIZE_DIGITS = 16
# The largest Content-Length taken (what a file offset holds); 10^29 is refused, not waited for.
MAX_CONTENT_LENGTH = 2**63 - 1

_HEX = frozenset(b"0123456789abcdefABCDEF")


_REASONS = {status.value: status.phrase for status in HTTPStatus}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def reason(status: int) -> str:
    return _REASONS.get(status, "Unknown")


def http_date(seconds: float) -> str:
    """An IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``), independent of the locale."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


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


class UnsafeHeader(ValueError):
    """A response header value that would not stay one header line; nothing was sent."""


# Control characters other than the CR LF that end each line; tabs too: no value we send has one.
_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")


def head_bytes(status: int, headers: Mapping[str, str], close: bool, http10: bool = False) -> bytes:
    """A response head; ``http10`` answers an HTTP/1.0 request kept alive (it must be told so).

    Every header value is checked in one pass over the joined head: a value
    with CR, LF or another control character, or a non-ASCII one, would
    inject header lines (a second Content-Length) into the answer.
    """
    lines = [f"HTTP/1.1 {status} {reason(status)}"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if close:
        lines.append("Connection: close")
    elif http10:
        lines.append("Connection: keep-alive")
    text = "\r\n".join(lines)
    breaks = len(lines) - 1
    if (
        text.count("\n") != breaks
        or text.count("\r") != breaks
        or not text.isascii()
        or _CONTROL.search(text)
    ):
        raise UnsafeHeader(_unsafe_header(headers))
    return (text + "\r\n\r\n").encode("ascii")


def _value_error(value: str) -> str | None:
    """Why ``value`` cannot be sent as a header value, or None when it can."""
    if not value.isascii():
        return "non-ASCII characters"
    if "\r" in value or "\n" in value or _CONTROL.search(value):
        return "a control character (CR, LF, NUL, ...)"
    return None


def _unsafe_header(headers: Mapping[str, str]) -> str:
    for name, value in headers.items():
        why = _value_error(name) or _value_error(value)
        if why is not None:
            return f"refusing to send the header {name[:60]!r}: its value has {why}"
    return "refusing to send a response head with a malformed line"


class BodySink(Protocol):
    def feed(self, data: bytes) -> None: ...


class ChunkedDecoder:
    """The chunked transfer coding, fed from the connection's buffer."""

    def __init__(self) -> None:
        self._left = 0  # bytes of the current chunk still to come
        self._state = "size"  # size | data | data_end | trailer | done

    @property
    def done(self) -> bool:
        return self._state == "done"

    def decode(self, buffer: bytearray, body: BodySink) -> None:
        """Consume what ``buffer`` holds, feeding decoded bytes to ``body``."""
        while buffer and self._state != "done":
            if self._state == "data":
                piece = bytes(buffer[: self._left])
                del buffer[: len(piece)]
                self._left -= len(piece)
                body.feed(piece)
                if self._left == 0:
                    self._state = "data_end"
                continue
            end = buffer.find(b"\r\n", 0, MAX_CHUNK_LINE + 2)
            if end < 0:
                if len(buffer) > MAX_CHUNK_LINE:
                    raise HttpError(400, "malformed chunked body: line too long")
                return
            line = bytes(buffer[:end])
            del buffer[: end + 2]
            if self._state == "data_end":
                if line:
                    raise HttpError(400, "malformed chunked body: data longer than its size")
                self._state = "size"
            elif self._state == "size":
                self._start_chunk(line)
            elif not line:  # the empty line after the trailers
                self._state = "done"

    def _start_chunk(self, line: bytes) -> None:
        size_text = line.split(b";", 1)[0].strip()
        if not size_text or any(c not in _HEX for c in size_text):
            raise HttpError(400, f"malformed chunked body: bad chunk size {line[:40]!r}")
        if len(size_text) > MAX_CHUNK_SIZE_DIGITS:
            raise HttpError(
                400,
                f"malformed chunked body: a chunk size of more than {MAX_CHUNK_SIZE_DIGITS} digits",
            )
        size = int(size_text, 16)
        if size == 0:
            self._state = "trailer"
        else:
            self._left = size
            self._state = "data"


# RFC 9110 tokens; a request target in origin form without controls or spaces.
_TOKEN_CHARS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN_CHARS + rb") (/[^\x00-\x20\x7f]*) (HTTP/\d\.\d)")
# A field value holds visible characters, spaces and tabs: no NUL, bare CR or other control.
_FIELD_LINE = re.compile(rb"(" + _TOKEN_CHARS + rb"):[ \t]*([^\x00-\x08\x0a-\x1f\x7f]*?)[ \t]*")
_FIELD_NAME = re.compile(rb"(" + _TOKEN_CHARS + rb"):")


def _request_line(line: bytes) -> tuple[str, str, str]:
    match = _REQUEST_LINE.fullmatch(line)
    if match is None:
        parts = line.split(b" ")
        if len(parts) == 3 and parts[2].startswith(b"HTTP/") and parts[1][:1] != b"/":
            raise HttpError(400, "the request target must be an absolute path")
        raise HttpError(400, "malformed request line")
    method, target, version = match.groups()
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are served")
    return method.decode("ascii"), target.decode("latin-1"), version.decode("ascii")


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Method, target, version and lower-cased header fields of a request head."""
    lines = head.split(b"\r\n")
    method, target, version = _request_line(lines[0])
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header fields")
    fields: dict[str, str] = {}
    match_field = _FIELD_LINE.fullmatch
    for line in lines[1:]:
        field = match_field(line)
        if field is None:
            raise _bad_field(line)
        raw_name, raw_value = field.groups()
        key = raw_name.decode("ascii").lower()
        text = raw_value.decode("latin-1")
        if key in fields:
            if key == "content-length" and fields[key] != text:
                raise HttpError(400, "conflicting Content-Length headers")
            if key != "content-length":
                fields[key] = f"{fields[key]}, {text}"
            continue
        fields[key] = text
    return method, target, version, fields


def _bad_field(line: bytes) -> HttpError:
    name = _FIELD_NAME.match(line)
    if name is None:
        return HttpError(400, f"malformed header line {line[:60]!r}")
    field = name.group(1).decode("ascii")
    return HttpError(
        400, f"the value of the header {field!r} has a control character (NUL, CR, LF, ...)"
    )


def framing(fields: dict[str, str], version: str = "HTTP/1.1") -> tuple[int | None, bool]:
    """(Content-Length, chunked) of a request."""
    encoding = fields.get("transfer-encoding")
    length = fields.get("content-length")
    if encoding is not None:
        if length is not None:
            raise HttpError(400, "Content-Length and Transfer-Encoding cannot be combined")
        if version == "HTTP/1.0":
            # RFC 9112, section 6.1: the framing of such a message is faulty.
            raise HttpError(400, "Transfer-Encoding is not part of HTTP/1.0")
        if encoding.strip().lower() != "chunked":
            raise HttpError(501, f"unsupported Transfer-Encoding {encoding[:40]!r}")
        return None, True
    if length is None:
        return None, False
    if not length.isdigit() or not length.isascii():
        raise HttpError(400, f"bad Content-Length {length[:40]!r}")
    if len(length) > 19 or int(length) > MAX_CONTENT_LENGTH:
        raise HttpError(400, f"Content-Length {length[:40]} exceeds {MAX_CONTENT_LENGTH}")
    return int(length), False
